"""--help of every subcommand: every command `petl --help` lists (and every `petl cache` and
`petl bench` mode) answers --help with exit status 0, a usage line naming itself and an options
list; every flag its usage line mentions is documented in that list; and `petl run --help`'s --set
lists every method option of the registry, as `petl list` shows them."""
import re

from common import Checks, parse_args, run

a = parse_args()
c = Checks()

top = run(a.petl, "--help").stdout
commands = re.findall(r"^  ([a-z][a-z-]+)\s{2,}\S", top.split("commands:")[1], re.M)
c.check(len(commands) >= 12 and "run" in commands and "sweep" in commands,
        f"`petl --help` lists the commands ({len(commands)}: {', '.join(commands)})")

invocations = [[cmd] for cmd in commands if cmd != "cache"]
invocations += [["cache", sub] for sub in ("ls", "verify", "rm", "build")] + [["cache"]]
invocations += [["bench", "--cached"], ["bench", "--budget", "4G"], ["data", "check"]]
for inv in invocations:
    p = run(a.petl, *inv, "--help", expect=None)
    name = " ".join(inv[:2] if inv[0] == "cache" else inv[:1])
    out = p.stdout
    usage_ok = p.returncode == 0 and f"usage: petl {name}" in out
    c.check(usage_ok, f"petl {' '.join(inv)} --help: exit 0 and 'usage: petl {name}' "
                      f"(exit {p.returncode}, stderr {p.stderr.strip()[:120]!r})")
    if not usage_ok or inv == ["cache"]:
        continue
    documented = set(re.findall(r"^\s+(?:-\w \[ )?--([a-z][a-z0-9-]*)", out, re.M))
    usage_lines = []  # the usage line(s): "usage: ..." and its indented continuations / other forms
    for line in out.splitlines():
        if line.startswith("usage:") or (usage_lines and line.startswith(" ")):
            usage_lines.append(line)
        elif usage_lines:
            break
    own = {f[2:] for f in inv if f.startswith("--")}  # a mode's own flag names the command
    mentioned = set(re.findall(r"--([a-z][a-z0-9-]*)", "\n".join(usage_lines))) - {"help"} - own
    missing = sorted(mentioned - documented)
    c.check(documented and not missing,
            f"petl {' '.join(inv)} --help documents every flag its usage names "
            f"({len(documented)} options{', missing: ' + ', '.join(missing) if missing else ''})")

# --set: the registry's method options, generated from it.
listing = run(a.petl, "list").stdout
keys = {}  # method -> its option keys
method = None
for line in listing.splitlines():
    m = re.match(r"^  (\w+)\s+grad-through-backbone=", line)
    if m:
        method = m.group(1)
        keys[method] = []
        continue
    m = re.match(r"^      (\w+)\s+=", line)
    if m and method:
        keys[method].append(m.group(1))
run_help = " ".join(run(a.petl, "run", "--help").stdout.split())
with_keys = {m: k for m, k in keys.items() if k}
c.check(len(with_keys) >= 10, f"`petl list` shows the options of {len(with_keys)} methods")
absent = [f"{m}.{k}" for m, ks in with_keys.items() for k in ks if k not in run_help]
c.check(not absent, f"petl run --help's --set names every method option ({sum(map(len, with_keys.values()))} keys)"
        + (f"; missing: {', '.join(absent)}" if absent else ""))
c.check("synqt: token_nums, attn_scale, ffn_scale, feat_scale, backbone_drop_path, kem_drop_path, "
        "backbone_micro_batch, dropout, combine_drop_path, query_recompute" in run_help,
        "all ten of SynQT's keys, in the registry's order")
c.done()
