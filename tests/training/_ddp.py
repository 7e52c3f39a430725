"""Worker for the 2-process gloo test (a module, so ``torch.multiprocessing.spawn`` can import it)."""

import os

import torch


def batches_and_model(store_root, ref, tok_path, cfg, cache):
    from cumed.store import Store
    from training.packing import pack_documents
    from training.lm_objective import micro_batches
    from training.model import build_model
    from training.pretrain import tokenize_documents
    from training.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_path)
    docs, _ = tokenize_documents(Store(store_root).get(ref), tok, cache)
    batches = micro_batches(pack_documents(docs, int(cfg["block_size"]), tok.eos_token_id), int(cfg["micro_batch_size"]))
    return batches, build_model(cfg, tok)


def worker(rank, world, port, store_root, ref, tok_path, cfg, runs, cache, out):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from training.fit import fit
        from training.lm_objective import lm_loss
        from training.run_folder import Run

        batches, model = batches_and_model(store_root, ref, tok_path, cfg, cache)
        run = Run.start("ddp", cfg, {}, runs)
        res = fit(run, model, batches, lm_loss, cfg)
        torch.save({"state": model.state_dict(), "last": res["last"]}, f"{out}.rank{rank}")
    finally:
        torch.distributed.destroy_process_group()
