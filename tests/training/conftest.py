"""Tiny inline datasets for the training tests: a toy store with every kind a stage reads."""

import pyarrow as pa
import pytest

from cumed.store import Store

SYMPTOMS = ["尿频", "尿急", "尿痛", "血尿", "腰痛", "排尿困难", "夜尿增多", "阴囊肿痛"]
ADVICE = ["建议多饮水，及时就医。", "需要做B超和尿常规检查。", "可能是前列腺增生，请泌尿外科就诊。",
          "注意休息，避免憋尿，必要时抗感染治疗。"]


def documents(n=40):
    rows = []
    for i in range(n):
        s = SYMPTOMS[i % len(SYMPTOMS)]
        text = f"{s}是泌尿系统常见症状之一。" * (1 + i % 4) + ADVICE[i % len(ADVICE)]
        rows.append({"id": f"doc-{i:03d}", "text": text, "source": "toy", "category": "encyclopedia",
                     "department": "urology", "n_chars": len(text), "metadata": "{}"})
    return pa.Table.from_pylist(rows)


def conversations(n=30):
    rows = []
    for i in range(n):
        s = SYMPTOMS[i % len(SYMPTOMS)]
        msgs = [{"role": "user", "content": f"医生您好，我最近{s}，怎么办？"},
                {"role": "assistant", "content": ADVICE[i % len(ADVICE)]}]
        if i % 3 == 0:
            msgs = [{"role": "system", "content": "你是泌尿科医生。"}, *msgs,
                    {"role": "user", "content": "需要吃药吗？"}, {"role": "assistant", "content": "先检查再用药。"}]
        split = "validation" if i % 10 == 9 else "train"
        rows.append({"id": f"conv-{i:03d}", "messages": msgs, "source": "toy", "department": "urology",
                     "n_turns": len(msgs), "split": split})
    return pa.Table.from_pylist(rows)


def preferences(n=48):
    """Separable: the chosen answer is always a real doctor's advice, the rejected one a dodge."""
    rows = []
    for i in range(n):
        s = SYMPTOMS[i % len(SYMPTOMS)]
        split = ["train"] * 4 + ["validation", "test"]
        rows.append({"prompt_id": f"p-{i:03d}", "prompt": f"我{s}第{i}天了，怎么办？",
                     "chosen": ADVICE[i % len(ADVICE)] + "请尽快复诊。",
                     "rejected": "不知道。" * (1 + i % 2), "chosen_rank": 1, "rejected_rank": 2,
                     "margin": 1.0, "split": split[i % 6]})
    return pa.Table.from_pylist(rows)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tokenisation caches of the tests stay out of the repository's .cache/; one thread per process
    (tiny models gain nothing from more, and the test machine is shared)."""
    import torch

    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.setenv("CUMED_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    st = Store(root)
    refs = {
        "docs": st.publish("toy-docs", documents(), kind="documents").ref,
        "sft": st.publish("toy-sft", conversations(), kind="conversations").ref,
        "pref": st.publish("toy-pref", preferences(), kind="preferences").ref,
    }
    return st, refs


@pytest.fixture(scope="session")
def toy_tokenizer(toy_store, tmp_path_factory):
    from training.tokenizer import load_tokenizer, train_tokenizer_from_version

    st, refs = toy_store
    out = tmp_path_factory.mktemp("tok") / "tok"
    train_tokenizer_from_version(st.get(refs["sft"]), 400, out)
    return load_tokenizer(out), out


def tiny_cfg(stage, **kw):
    """The stage preset with test-sized values (every test run is seconds on one CPU core)."""
    from training.config import load_config

    base = {"block_size": 256, "micro_batch_size": 4, "batch_size": 4, "checkpoint_every": 0, "warmup_ratio": 0.0,
            "warmup_min_steps": 0, "schedule": "constant", "tokenizer_vocab_size": 400}
    return load_config(stage, **{**base, **kw})


def run_cli(args, capsys):
    """``cumed ARGS`` in this process: (exit code, stdout, stderr)."""
    from cumed.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err
