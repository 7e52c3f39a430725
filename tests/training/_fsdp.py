"""Worker for the FSDP tests (a module, so ``torch.multiprocessing.spawn`` can import it).

Each spawned rank runs a list of jobs in order, in one process group: ``fit`` (sharded by
``parallelism: fsdp`` in the job's config), then ``save_final``, which gathers the shards. What a
job leaves for the test: rank 0's logged losses, the fit result and this rank's local shard of
every parameter (the test concatenates them to check the consolidated final folder).
"""

import os

import torch

from . import _ddp


def worker(rank, world, port, store_root, ref, tok_path, cache, jobs, out):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from training.fit import KILL_ENV, fit
        from training.lm_objective import lm_loss
        from training.run_folder import Run
        from training.tokenizer import load_tokenizer

        tok = load_tokenizer(tok_path)
        for job in jobs:
            os.environ[KILL_ENV] = str(job.get("kill_at") or 0)  # SIGKILL this rank after that step's checkpoint
            run = Run.resume(job["resume"]) if job.get("resume") else Run.start(job["name"], job["cfg"], {}, job["runs"])
            cfg = run.config
            batches, model = _ddp.batches_and_model(store_root, ref, tok_path, cfg, cache)
            res = fit(run, model, batches, lm_loss, cfg)
            final = run.save_final(model, tok)
            shards = {k: v.to_local().detach().clone() for k, v in model.state_dict().items()}
            losses = [m["loss"] for m in run.metrics() if "loss" in m]
            torch.save({"result": res, "losses": losses, "shards": shards, "final": str(final), "run": str(run.path),
                        "checkpointing": bool(getattr(model, "is_activation_checkpointing", False))},
                       f"{out}/{job['name']}.rank{rank}")
    finally:
        torch.distributed.destroy_process_group()
