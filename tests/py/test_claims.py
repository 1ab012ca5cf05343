"""README's table "Claims and the tests behind them": every row names a claim, at least one test and
a tolerance, and every test it names is registered with ctest (a gtest as Suite.Test, also as a
parameterised instance, the farm's gtests in tests/mpi/test_farm.cpp under mpi.farm.np1/2/4; the
python, MPI and Slurm tests by their ctest names). Fails when a test is
renamed or removed while README still cites it."""
import os
import re
import subprocess

from common import TESTS, Checks, parse_args

a = parse_args()
c = Checks()
build = os.path.dirname(os.path.abspath(a.petl))
listed = subprocess.run(["ctest", "-N"], cwd=build, capture_output=True, text=True, check=True).stdout
registered = set(re.findall(r"Test\s+#\d+: (\S+)", listed))
c.check(len(registered) > 100, f"ctest lists the suite ({len(registered)} tests)")


def in_farm_tests(name):
    """The farm's gtests have their own MPI main and run as mpi.farm.np1/np2/np4, not one by one."""
    suite, _, test = name.partition(".")
    src = open(os.path.join(TESTS, "mpi", "test_farm.cpp")).read()
    return bool(re.search(r"TEST(?:_F|_P)?\(" + re.escape(suite) + r",\s*" + re.escape(test) + r"\)", src)) and \
        all(f"mpi.farm.np{n}" in registered for n in (1, 2, 4))


def is_registered(name):
    if name in registered:
        return True
    # gtest_discover_tests names a parameterised test Prefix/Suite.Test/param
    if any(re.fullmatch(r"(?:[^/]+/)?" + re.escape(name) + r"(?:/.+)?", t) for t in registered):
        return True
    return in_farm_tests(name)


readme = open(os.path.join(TESTS, "..", "README.md")).read().splitlines()
start = next((i for i, l in enumerate(readme) if l.strip() == "## Claims and the tests behind them"), None)
c.check(start is not None, "README has the section 'Claims and the tests behind them'")
rows = []
if start is not None:
    head = next(i for i in range(start, len(readme)) if readme[i].startswith("| claim | tests | tolerance |"))
    for l in readme[head + 2:]:
        if not l.startswith("|"):
            break
        rows.append([x.strip() for x in l.strip().strip("|").split("|")])
c.check(len(rows) >= 20, f"the table has a row per strong claim ({len(rows)} rows)")
named = 0
for claim, tests, tolerance in (r if len(r) == 3 else (r[0], "", "") for r in rows):
    names = re.findall(r"`([^`]+)`", tests)
    c.check(bool(names) and bool(tolerance), f"'{claim[:60]}': names its tests ({len(names)}) and a tolerance")
    for n in names:
        named += 1
        c.check(is_registered(n), f"'{claim[:50]}': {n} is a registered test")
print(f"{named} test names checked")
c.done()
