"""`petl run --memory-budget`: a job given a budget below its whole-batch peak trains in
micro-batches whose measured training peak stays under the budget (the record's memory_budget
section holds the budget, the model, the prediction and the measured peak) and reaches the
whole-batch run's accuracy; `--micro-batch` alone gives the same evaluations as the whole batch up
to round-off; a budget below one image is recorded as does_not_fit with the minimum peak (a
result, not a failure) and counted by `petl report`; `petl bench --budget` tabulates the micro-batch
each budget needs."""
import json
import os

from common import GOLDEN, Checks, make_task, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
data = os.path.join(S, "data")
make_task(data, "alpha", 96, 64, 3, seed=0)


def job(out, *extra):
    run(a.petl, "run", "--method", "lora", "--task", "alpha", "--data-root", data, "--backbone", backbone, "--epochs",
        "4", "--batch-size", "32", "--set", "lora_dropout=0", "--set", "drop_path_rate=0", "--threads", "1", "--out", out, *extra)
    return [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))][-1]


whole = job(os.path.join(S, "whole"))
peak = whole["memory"]["peak_train_mib"]
micro = job(os.path.join(S, "micro"), "--micro-batch", "5")
c.check(all(abs(x["test_acc"] - y["test_acc"]) < 1e-9 and abs(x["train_loss"] - y["train_loss"]) < 1e-5
            for x, y in zip(whole["evals"], micro["evals"])),
        f"--micro-batch 5: the whole batch's evaluations ({whole['evals']} vs {micro['evals']})")
c.check(micro["memory"]["peak_train_mib"] < peak, f"--micro-batch 5 peaks lower ({micro['memory']['peak_train_mib']:.2f} "
        f"vs {peak:.2f} MiB)")
budget_mib = 0.85 * peak
rec = job(os.path.join(S, "budget"), "--memory-budget", f"{int(budget_mib * 1024)}K")
mb = rec.get("memory_budget", {})
c.check(0 < mb.get("micro_batch", 0) < 32, f"budget {budget_mib:.2f} MiB: micro-batch {mb.get('micro_batch')} of 32")
c.check(mb.get("within_budget") is True and rec["memory"]["peak_train_mib"] <= budget_mib + 1e-6,
        f"measured peak {rec['memory']['peak_train_mib']:.2f} MiB <= budget")
c.check(abs(mb.get("predicted_peak_mib", 0) - mb.get("measured_peak_mib", 1)) <= 0.05 * mb.get("measured_peak_mib", 1),
        f"prediction {mb.get('predicted_peak_mib')} within 5 % of the measured {mb.get('measured_peak_mib')}")
c.check(abs(rec["accuracy"] - whole["accuracy"]) < 1e-9, "same accuracy as the whole batch")
p = run(a.petl, "run", "--method", "lora", "--task", "alpha", "--data-root", data, "--backbone", backbone,
        "--epochs", "1", "--out", os.path.join(S, "tiny"), "--memory-budget", "64K")
c.check("does not fit the memory budget of 64.0 KiB" in p.stderr and "predicted to peak at" in p.stderr,
        "a budget below one image: said, naming the minimum peak\n" + p.stderr[-400:])
tiny = [json.loads(l) for l in open(os.path.join(S, "tiny", "results.jsonl"))][-1]
c.check(tiny["status"] == "does_not_fit" and tiny["memory_budget"]["minimum_peak_mib"] > 0.0625
        and "accuracy" not in tiny, "... and recorded as does_not_fit with its minimum peak, no accuracy")
rep = run(a.petl, "report", os.path.join(S, "tiny", "results.jsonl"), os.path.join(S, "whole", "results.jsonl"),
          "--reference", "none")
c.check("does_not_fit" in rep.stdout + rep.stderr, "petl report counts the does_not_fit record\n" + rep.stdout[-300:])
# petl bench --budget: the table of micro-batches per budget on the embedded architecture.
p = run(a.petl, "bench", "--budget", "1K,6M,1G", "--archs", "petl_vit_mini_p8_32", "--methods", "linear,lora",
        "--batch-size", "16", "--json", os.path.join(S, "bench.jsonl"))
rows = [json.loads(l) for l in open(os.path.join(S, "bench.jsonl"))]
c.check(len(rows) == 2 and all(len(r["budgets"]) == 3 for r in rows), "bench --budget: a row per method, a cell per budget")
c.check(all(not r["budgets"][0]["fits"] and r["budgets"][2].get("micro_batch") == 16 for r in rows),
        "1K does not fit; 1G takes the full batch")
lora = next(r for r in rows if r["method"] == "lora")
c.check(lora["peak_mib"] > 6 and 1 <= lora["budgets"][1].get("micro_batch", 0) < 16
        and lora["budgets"][1]["predicted_peak_mib"] <= 6,
        f"lora under 6M: micro-batch {lora['budgets'][1].get('micro_batch')} (peak at 16: {lora['peak_mib']:.1f} MiB)")
cell = lora["budgets"][1]
c.check(abs(cell.get("predicted_peak_mib", 0) - cell.get("measured_peak_mib", 1)) <= 0.05 * cell.get("measured_peak_mib", 1)
        and cell.get("measured_peak_mib", 99) <= 6,
        f"bench: lora's predicted peak {cell.get('predicted_peak_mib')} within 5 % of the measured "
        f"{cell.get('measured_peak_mib')} MiB, under the budget")
c.check("| petl_vit_mini_p8_32 | lora |" in p.stdout and "does not fit (min" in p.stdout, "the markdown table")
c.done()
