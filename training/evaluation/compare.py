"""Before/after: a checkpoint and its parent answer the same prompts, side by side.

Continued pretraining or fine-tuning can make a model forget; answering one prompt set with both
checkpoints and scoring both with the same reference metrics shows it at once. Answers are
greedy (deterministic) and kept in the result so the judge can compare them too.
"""

from __future__ import annotations

from pathlib import Path

from training.evaluation.benchmarks import load_benchmark
from training.evaluation.metrics import compute_metrics


def generate_answers(model_dir: str | Path, tokenizer_dir: str | Path, items, max_new_tokens: int = 48,
                     batch_size: int = 8) -> dict[str, str]:
    """Greedy answers of one checkpoint, prompted through the tokenizer's chat template."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    tok.padding_side = "left"  # decoder-only generation continues from the right edge
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.eval()
    out: dict[str, str] = {}
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        prompts = [tok.apply_chat_template([{"role": "user", "content": it.prompt}], tokenize=False,
                                           add_generation_prompt=True) for it in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for it, row in zip(chunk, gen[:, enc["input_ids"].shape[1]:]):
            out[it.id] = tok.decode(row, skip_special_tokens=True).strip()
    return out


def compare_checkpoints(child: str | Path, parent: str | Path, tokenizer: str | Path, raw: str | Path,
                        bench: str = "huatuo26m_test", subset: str = "urology", n: int = 16,
                        max_new_tokens: int = 48, names: tuple[str, str] = ("child", "parent")) -> dict:
    """Metrics of ``child`` and ``parent`` on the first ``n`` items of a benchmark subset.

    Returns ``{"bench", "subset", "metrics": {name: {...}}, "answers": {name: {id: text}}}`` — the
    shape ``cumed eval report`` renders.
    """
    items = load_benchmark(bench, raw, subset=subset)[:n]
    answers = {names[0]: generate_answers(child, tokenizer, items, max_new_tokens),
               names[1]: generate_answers(parent, tokenizer, items, max_new_tokens)}
    return {"bench": bench, "subset": subset, "n": len(items),
            "metrics": {name: compute_metrics(items, ans) for name, ans in answers.items()},
            "answers": answers}
