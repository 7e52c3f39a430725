"""Sharded data parallelism (FSDP2): each rank keeps 1/world of every weight, gradient and optimizer moment.

DDP keeps a whole replica per rank, and past a few billion parameters the replica plus AdamW's two
moments no longer fit one device. ``fully_shard`` on each decoder layer, then on the root: a
layer's weights are gathered just before its forward (and again before its backward) and freed
after, so a rank holds one layer's full weights plus its own shard of everything else. The
parameters become DTensors in place (the model object stays the same, no wrapper module), so the
optimizer must be built after ``shard_model``, on the sharded parameters.

``parallelism: fsdp`` in a stage's config picks this; ``activation_checkpointing`` and
``cpu_offload`` trade compute or host memory for device memory.
"""

from __future__ import annotations

import torch

from cumed.errors import CumedError

from training.distributed import ensure_process_group, is_sharded


def decoder_layers(model) -> torch.nn.ModuleList:
    """The repeated blocks to shard one by one: ``model.model.layers`` for LLaMA (causal or reward head)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
        raise CumedError(f"parallelism: fsdp found no decoder layers (model.model.layers) in {type(model).__name__}; "
                         f"use a LLaMA-style model or parallelism: ddp")
    return layers


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them.

    The model's own switch (transformers 5: ``activation_checkpointing_enable``; before it
    ``gradient_checkpointing_enable``), non-reentrant: the checkpoint wraps the layer's whole
    ``__call__``, forward hooks included, so under FSDP the recompute gathers the layer's shards
    again, and parameter names stay as they are (torch's ``checkpoint_wrapper`` would insert
    ``_checkpoint_wrapped_module.`` into every name, which DCP strips but ``state_dict()`` does not).
    Both give the same losses with ``fully_shard`` in torch 2.13; the reentrant variant does not mix
    with FSDP2's hooks and is not used. It works under DDP as well.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise CumedError(f"activation_checkpointing: true but {type(model).__name__} does not support gradient "
                         f"checkpointing; set activation_checkpointing: false")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def shard_model(model, cfg: dict, device: torch.device):
    """Shard ``model`` over every rank (a one-process group when not started by ``torchrun``); returns it.

    Every rank must call this with the same model (same seed, so the same initial weights: each
    keeps its slice of them).
    """
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard
    except ImportError as e:
        raise CumedError(f"parallelism: fsdp needs torch.distributed.fsdp.fully_shard (torch >= 2.6; this is "
                         f"torch {torch.__version__}); upgrade torch or set parallelism: ddp") from e
    if is_sharded(model):  # fit() called again on the same model: its parameters are shards already
        return model
    _, world = ensure_process_group()
    layers = decoder_layers(model)
    if cfg.get("activation_checkpointing"):
        enable_activation_checkpointing(model)
    # bf16 weights for the forward/backward and fp32 gradient reduction, the sharded master weights
    # and AdamW's moments staying fp32. GPU only: CPU runs stay fp32 everywhere, as the DDP path's
    # autocast does, so a CPU FSDP run is comparable exactly with a single-process one (the tests).
    if cfg.get("precision") == "bf16" and device.type == "cuda":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        mp = MixedPrecisionPolicy()
    offload = OffloadPolicy()
    if cfg.get("cpu_offload"):
        # The shards (and the optimizer step) live in host memory and are copied to the device per
        # layer: slower, but the device holds little beyond one layer. It pins host memory, which
        # needs an accelerator: on a CPU-only machine there is nothing to offload from.
        if device.type != "cuda":
            raise CumedError("cpu_offload: true needs a GPU (it moves the shards from GPU to host memory); "
                             "set cpu_offload: false for a CPU run")
        offload = CPUOffloadPolicy()
    else:
        model.to(device)  # shard it where it computes (with cpu_offload, fully_shard places the shards in host memory)
    mesh = init_device_mesh(device.type, (world,))
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp, offload_policy=offload)
    # the root holds what is left (embeddings, final norm, the LM or score head)
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=offload)
    return model
