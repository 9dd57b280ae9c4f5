"""Table 6: trainable parameters on LLaMA-3-8B at equal rank, counted on the real adapters.

The counts are ``idlora.param_counts``': the model built from its ``config.json`` on the meta device (no weights, no
download), each method's PEFT adapter instantiated on it, its trainable parameters counted. No formula is involved;
``tests/test_methods.py`` checks the counts against docs/DESIGN.md §1's closed forms independently.
"""

from __future__ import annotations

from ...methods import TABLE_ORDER, table_label
from ...param_counts import LORI_SPARSITY, lori_trainable, paper_scale_counts, shipped_structure, trainable_count
from .render import Table, paper_numbers

RANKS = (8, 16, 32, 64, 128)
METHODS = tuple(m for m in TABLE_ORDER if m != "fft")  # the adapters: full fine-tuning has no rank
LABELS = {m: table_label(m) for m in METHODS}


def fmt_count(n: int) -> str:
    """As the paper prints counts: one decimal, M = 1e6, B = 1e9."""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def build(scale: str = "mini", model_name: str = "llama3_8b") -> Table:
    paper = paper_numbers()["table6"]["rows"]
    table = Table(name="table6", title="Trainable parameters on LLaMA-3-8B at equal rank", scale=scale,
                  rows=[str(r) for r in RANKS], columns=list(METHODS), column_labels=LABELS,
                  row_labels={str(r): f"r={r}" for r in RANKS},
                  fmt=lambda n: f"{fmt_count(n)} ({n:,})")
    for r in RANKS:
        for m in METHODS:
            count, _ = trainable_count(model_name, m, r)
            if m == "lori":  # B's entries the model-wise mask keeps
                count = lori_trainable(count)
            table.add(str(r), m, count, paper=paper[str(r)].get(m))
    mismatched = [(c["row"], c["column"]) for c in table.cells
                  if c["paper"] is not None and fmt_count(c["ours"]) != c["paper"]]
    table.notes.append(
        "Counts are exact: the real adapters instantiated on a meta-device LLaMA-3-8B (configs/hf/llama3_8b), "
        "targets q,k,v,o,gate,up,down; HydraLoRA with 3 heads, MoELoRA with 4 experts, ID-LoRA with k=4, Rank "
        "Boosting and the linear router. Identical at every scale (no training involved)."
    )
    table.notes.append(
        f"LoRI (ours; not in the paper, asked for by its reviewers): B's entries left trainable by its task mask at "
        f"sparsity {LORI_SPARSITY} (10% of the (d_out, r) entries of every B, chosen model-wise); its A is frozen."
    )
    table.notes.append(_baselines_note(model_name))
    for row, col in mismatched:
        c = table.cell(row, col)
        table.notes.append(
            f"{LABELS[col]} at r={row}: the exact count {c['ours']:,} rounds to {fmt_count(c['ours'])}; the paper "
            f"prints {c['paper']}."
        )
    return table


def _baselines_note(model_name: str) -> str:
    """What the PEFT baselines' columns count, and their counts at the ranks of their Tables 1-2 rows."""
    lora = trainable_count(model_name, "lora", 32)[0]
    at_paper = "; ".join(f"{LABELS[m]} r={r}: {n:,} ({n / lora:.3f}x LoRA r=32's {lora:,})"
                         for m, (r, n) in paper_scale_counts(model_name).items())
    vb = shipped_structure("vblora")
    lily = shipped_structure("lily")
    return (f"VeRA, VB-LoRA, LoRA-FA, Lily (ours; PEFT's own classes, not in the paper): VeRA's trainable "
            f"parameters are its vectors lambda_d (r) and lambda_b (d_out) per layer (its random A, B are frozen "
            f"buffers); VB-LoRA's the bank ({vb['num_vectors']} x {vb['vector_length']}) and every logit (top-"
            f"{vb['topk']} used per sub-vector); LoRA-FA's B only (A frozen); Lily's an A per {lily['stride_A']} "
            f"layers, "
            f"{lily['num_B']} B's per target and a router per layer. At the ranks of their Tables 1-2 rows "
            f"(configs/scale/paper.yaml, chosen for a budget close to LoRA's; docs/DESIGN.md §2 item 7): {at_paper}.")
