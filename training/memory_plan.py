"""Will a training setting fit in GPU memory? Parameter count and per-GPU bytes, before a weight is allocated.

A 13B run that cannot fit should stop in the first second with the numbers and the fix, not after
the checkpoint has loaded and the first backward pass has run out of memory. ``plan`` estimates,
per GPU, what one training step keeps alive for every setting (DDP / FSDP x activation
checkpointing x CPU offload) and names the cheapest one that fits; ``check_fits`` is the preflight
every stage runs from ``training.model.build_model`` (only ``config.json`` of a checkpoint folder is
read); ``cumed train plan`` prints the table.

The precision model (what ``training/fit.py`` does): weights, gradients and the two AdamW moments
are fp32 (4 + 4 + 8 = 16 bytes per parameter); ``precision: bf16`` on GPU autocasts the matmuls, so
activations are bf16 while the norms and the loss stay fp32. That is the same 16 bytes per
parameter as the mixed-precision AdamW of the ZeRO paper (2 fp16 weights + 2 fp16 gradients + 12
fp32 master weights, momentum and variance; Rajbhandari et al. 2020, "ZeRO", section 3.1), split
differently. On CPU everything is fp32 (``fit`` autocasts on CUDA only).

Activations are counted the way Korthikanti et al. 2022 ("Reducing Activation Recomputation in
Large Transformer Models", section 4.1: 34sbh + 5as^2b bytes per GPT layer) count them -- every
tensor autograd saves for the backward pass -- redone for a Hugging Face LLaMA layer: fp32
RMSNorms, SwiGLU (four intermediate-sized tensors), rotary q/k, GQA keys/values repeated to all
heads for sdpa. Eager attention keeps the a*s^2 softmax per row; sdpa's memory-efficient/flash
kernels and flash_attention_2 keep only the output and a log-sum-exp. With activation
checkpointing a layer keeps only its input (Korthikanti's "full recomputation", 2sbhL for 16-bit),
plus one layer's activations recomputed at a time during the backward pass.

GB in this module are GiB (2**30 bytes), as ``nvidia-smi`` and ``torch.cuda`` report them.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cumed.errors import CumedError

GIB = 2 ** 30

# Fixed per-GPU cost outside the model's tensors: the CUDA context and kernels (300 MB to 1 GB
# depending on the CUDA version and GPU, PyTorch "CUDA semantics" notes), cuBLAS workspaces and
# NCCL's communicator buffers. Allocator fragmentation is the headroom's job (memory_headroom).
CUDA_OVERHEAD_GB = 1.0
# The fraction of the device a plan may fill: the caching allocator rounds blocks and fragments,
# so a plan that needs 100 % of the card OOMs in practice. 10 % spare is a conventional margin.
HEADROOM = 0.9


@dataclass(frozen=True)
class Shape:
    """A LLaMA-family decoder: the numbers in its config.json that decide the parameter count."""

    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    head_dim: int | None = None      # None: hidden / heads
    tied: bool = False               # lm_head shares the embedding matrix
    attention_bias: bool = False
    mlp_bias: bool = False

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads


# Published shapes. LLaMA-2: Touvron et al. 2023, "Llama 2", table 1 / appendix, and the config.json
# of meta-llama/Llama-2-{7b,13b,70b}-hf (70B uses grouped-query attention, 8 kv heads). Ziya: the
# config.json of IDEA-CCNL/Ziya-LLaMA-13B-v1 (LLaMA-13B with a Chinese-extended vocabulary of 39,424
# tokens); the paper's Ziya-LLaMA-13B-v2 is the same architecture.
SIZES = {
    "7b": Shape("LLaMA-2-7B", 32000, 4096, 32, 32, 32, 11008),
    "13b": Shape("LLaMA-2-13B", 32000, 5120, 40, 40, 40, 13824),
    "ziya-13b": Shape("Ziya-LLaMA-13B", 39424, 5120, 40, 40, 40, 13824),
    "70b": Shape("LLaMA-2-70B", 32000, 8192, 80, 64, 8, 28672),
}


# ---- parameters

def layer_params(s: Shape) -> int:
    """One decoder layer: q/k/v/o projections (k and v on the kv heads), SwiGLU gate/up/down, two RMSNorms."""
    q, kv = s.heads * s.hd, s.kv_heads * s.hd
    attn = s.hidden * q + 2 * s.hidden * kv + q * s.hidden + ((q + 2 * kv + s.hidden) if s.attention_bias else 0)
    mlp = 3 * s.hidden * s.intermediate + ((2 * s.intermediate + s.hidden) if s.mlp_bias else 0)
    return attn + mlp + 2 * s.hidden


def root_params(s: Shape, head: str = "causal") -> int:
    """Outside the layers: embeddings, the final norm and the head (lm_head V x h unless tied; the
    reward model's ``score`` is h x 1 and replaces lm_head)."""
    out = (0 if s.tied else s.vocab * s.hidden) if head == "causal" else s.hidden
    return s.vocab * s.hidden + s.hidden + out


def parameter_count(s: Shape, head: str = "causal") -> int:
    return s.layers * layer_params(s) + root_params(s, head)


# ---- where a shape comes from

def shape_from_config_json(path: str | Path) -> Shape:
    """A checkpoint folder's (or a file's) config.json; only the numbers are read, no weights."""
    p = Path(path)
    f = p / "config.json" if p.is_dir() else p
    if not f.is_file():
        raise CumedError(f"{path} has no config.json; give a Hugging Face checkpoint folder, a size ({', '.join(SIZES)}) "
                         f"or a stage config")
    c = json.loads(f.read_text(encoding="utf-8"))
    c = c.get("text_config", c)
    try:
        return Shape(name=c.get("_name_or_path") or p.name, vocab=int(c["vocab_size"]), hidden=int(c["hidden_size"]),
                     layers=int(c["num_hidden_layers"]), heads=int(c["num_attention_heads"]),
                     kv_heads=int(c.get("num_key_value_heads") or c["num_attention_heads"]),
                     intermediate=int(c["intermediate_size"]), head_dim=c.get("head_dim"),
                     tied=bool(c.get("tie_word_embeddings", False)), attention_bias=bool(c.get("attention_bias", False)),
                     mlp_bias=bool(c.get("mlp_bias", False)))
    except KeyError as e:
        raise CumedError(f"{f} lacks {e.args[0]}: the memory plan reads LLaMA-style configs "
                         f"(hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size)") from e


def shape_from_cfg(cfg: dict, vocab: int) -> Shape:
    """The tiny LLaMA that ``build_model`` makes from a stage config's ``tiny_*`` values."""
    return Shape("tiny", int(vocab), int(cfg["tiny_hidden_size"]), int(cfg["tiny_layers"]), int(cfg["tiny_heads"]),
                 int(cfg["tiny_kv_heads"]), int(cfg["tiny_intermediate_size"]))


def resolve_shape(model: str | Path | None, cfg: dict | None = None, vocab: int | None = None) -> Shape:
    """A size name (``13b``), a checkpoint folder or config.json, or (``None``/``tiny``) the cfg's tiny LLaMA."""
    if model is None or str(model).lower() == "tiny":
        if cfg is None:
            raise CumedError("a tiny model needs a stage config for its tiny_* values")
        return shape_from_cfg(cfg, vocab if vocab is not None else int(cfg.get("tokenizer_vocab_size") or 32000))
    key = str(model).lower()
    if key in SIZES:
        return SIZES[key]
    return shape_from_config_json(model)


# ---- activations

def activation_bytes(s: Shape, seq: int, rows: int, *, act_bytes: int = 2, weight_bytes: int = 4,
                     attn: str = "sdpa", dropout: float = 0.0, head: str = "causal", checkpointing: bool = False,
                     packed_mask: bool = True) -> int:
    """Bytes autograd keeps for one micro-batch of ``rows`` x ``seq`` tokens (see the module docstring).

    Per token and layer, ``d = act_bytes`` (2 under bf16 autocast, 4 in fp32), ``w = weight_bytes``:

    * each RMSNorm: its fp32 input (4h) and normalised output (wh), the output itself wh -- or under
      autocast one d-byte cast per consuming Linear (3 for q/k/v, 2 for gate/up), since autocast
      caches casts of weights, not of activations;
    * attention: rotary q and k, v (k and v repeated to all heads unless flash_attention_2), the
      o_proj input, and for sdpa its output (d each, h wide) plus a 4-byte log-sum-exp per head;
      eager instead keeps the fp32 softmax (4as), its d-byte cast, and with dropout its mask and
      output (d bytes each, measured on CPU) (Korthikanti's 5as term, in this layer's dtypes);
    * SwiGLU: gate output, silu output, up output, their product (4 x d x intermediate).
    """
    h, a, i, tokens = s.hidden, s.heads, s.intermediate, seq * rows
    d, w = act_bytes, weight_bytes
    kv = s.kv_heads * s.hd if attn == "flash_attention_2" else a * s.hd

    def norm(consumers: int) -> int:
        return 4 * h + w * h + (consumers * d * h if d != w else w * h) + 4

    if attn == "eager":
        attention = d * (a * s.hd + 2 * kv + h) + a * seq * (4 + (d if d != 4 else 0) + (2 * d if dropout else 0))
    else:
        attention = d * (a * s.hd + 2 * kv + 2 * h) + 4 * a
    per_layer = norm(3) + attention + norm(2) + 4 * d * i
    layers = s.layers * w * h + per_layer if checkpointing else s.layers * per_layer
    # final norm feeding lm_head; the logits: lm_head's output (d), then fit's loss upcasts to fp32 and
    # keeps log_softmax (4), and the backward holds its fp32 gradient (4) -- Korthikanti's 4sbv
    # output-layer term, counted in these dtypes. The reward head's logits are one number per token.
    top = norm(1) + (s.vocab * (d + 8) if head == "causal" else 4)
    total = tokens * (layers + top)
    # packed rows carry a per-document 4D mask (bool for sdpa, d bytes for eager); flash uses position_ids
    if packed_mask and attn != "flash_attention_2":
        total += rows * seq * seq * (1 if attn == "sdpa" else d)
    return int(total)


# ---- the plan

@dataclass(frozen=True)
class Setting:
    parallelism: str = "ddp"               # ddp | fsdp
    activation_checkpointing: bool = False
    cpu_offload: bool = False

    @property
    def label(self) -> str:
        return "+".join([self.parallelism] + (["AC"] if self.activation_checkpointing else [])
                        + (["offload"] if self.cpu_offload else []))

    def config_keys(self) -> str:
        return (f"parallelism: {self.parallelism}, activation_checkpointing: {str(self.activation_checkpointing).lower()}, "
                f"cpu_offload: {str(self.cpu_offload).lower()}")


# The order "smallest setting that fits" tries, cheapest first. DDP is the fastest and simplest (one
# gradient all-reduce per step, no parameter gathering). Activation checkpointing costs one extra
# forward pass (~33 % more compute; Korthikanti et al. 2022, section 5) but no communication and no
# change to the optimizer state, so it comes before sharding. FSDP shards parameters, gradients and
# AdamW states (ZeRO stage 3) at 1.5x DDP's communication volume (ZeRO paper, section 7), which
# overlaps with compute on NVLink; FSDP + checkpointing pays both. CPU offload moves the shards and
# the AdamW step to the host over PCIe -- several times slower -- so it is the last resort.
LADDER = (Setting("ddp"), Setting("ddp", True), Setting("fsdp"), Setting("fsdp", True), Setting("fsdp", True, True))
ALL = (Setting("ddp"), Setting("ddp", True), Setting("ddp", False, True), Setting("ddp", True, True),
       Setting("fsdp"), Setting("fsdp", True), Setting("fsdp", False, True), Setting("fsdp", True, True))


@dataclass
class Estimate:
    setting: str
    parallelism: str
    activation_checkpointing: bool
    cpu_offload: bool
    supported: bool = True
    params: float = 0.0          # GiB per GPU, each field
    grads: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    comm: float = 0.0            # DDP gradient buckets, or FSDP's gathered units
    step_temp: float = 0.0       # the foreach AdamW's temporaries (only while activations are freed)
    overhead: float = 0.0
    total: float = 0.0
    host: float = 0.0            # GiB of host RAM per GPU process that offload moves there
    fits: bool = False
    note: str = ""


@dataclass
class Plan:
    model: str
    parameters: int
    head: str
    gpus: int
    gpu_memory_gb: float
    headroom: float
    usable_gb: float
    seq_len: int
    micro_batch_rows: int
    precision: str
    attn: str
    device: str
    estimates: list[Estimate] = field(default_factory=list)
    recommended: str | None = None

    def get(self, setting: Setting | str) -> Estimate:
        label = setting.label if isinstance(setting, Setting) else setting
        return next(e for e in self.estimates if e.setting == label)

    def as_dict(self) -> dict:
        return asdict(self)


def estimate(s: Shape, setting: Setting, *, world: int, seq: int, rows: int, gpu_memory_gb: float,
             headroom: float = HEADROOM, precision: str = "bf16", attn: str = "sdpa", dropout: float = 0.0,
             head: str = "causal", device: str = "cuda", overhead_gb: float | None = None) -> Estimate:
    """Per-GPU GiB of one setting. ``device="cpu"``: fp32, no CUDA overhead, single-tensor AdamW (no temporaries)."""
    n = parameter_count(s, head)
    d = 2 if (precision in ("bf16", "fp16") and device == "cuda") else 4
    w = 4  # fp32 weights, gradients and AdamW moments (module docstring)
    shard = world if setting.parallelism == "fsdp" else 1
    local = n / shard
    params, grads, optim = w * local, w * local, 2 * 4 * local
    # on CPU, sdpa with dropout falls back to the math kernel, which keeps the softmax like eager (measured)
    attn = "eager" if device == "cpu" and attn == "sdpa" and dropout else attn
    act = activation_bytes(s, seq, rows, act_bytes=d, weight_bytes=w, attn=attn, dropout=dropout, head=head,
                           checkpointing=setting.activation_checkpointing)
    if setting.parallelism == "ddp":
        # DDP's reducer keeps its own flat copy of the gradients in buckets (gradient_as_bucket_view=False,
        # the default; PyTorch DistributedDataParallel docs). fit() wraps in DDP only when world > 1.
        comm = w * n if world > 1 else 0
    else:
        # FSDP (training/sharding.py: fully_shard per decoder layer, embeddings + final norm + head in
        # the root unit): the unit being computed and the one prefetched are gathered whole, in bf16
        # under bf16 precision (MixedPrecisionPolicy(param_dtype=bf16)), and a unit's full gradient
        # exists until its reduce-scatter (counted fp32, reduce_dtype).
        unit = max(layer_params(s), root_params(s, head))
        comm = 2 * unit * d + unit * w
    # The foreach AdamW (the default on CUDA) holds a parameter-sized list of intermediates during
    # step() ("foreach ... uses more peak memory", torch.optim docs); activations are freed by then.
    step_temp = 4 * local if device == "cuda" and not setting.cpu_offload else 0
    host = 0.0
    if setting.cpu_offload:
        if setting.parallelism == "ddp":
            return Estimate(setting.label, setting.parallelism, setting.activation_checkpointing, True, supported=False,
                            note="PyTorch DDP has no CPU offload (ZeRO-Offload is DeepSpeed's); use fsdp")
        host = params + grads + optim  # FSDP CPUOffload(offload_params=True): shards and the AdamW step on the host
        params = grads = optim = 0
    overhead = (CUDA_OVERHEAD_GB if overhead_gb is None and device == "cuda" else overhead_gb or 0.0) * GIB
    total = params + grads + optim + max(act + comm, step_temp) + overhead
    e = Estimate(setting.label, setting.parallelism, setting.activation_checkpointing, setting.cpu_offload,
                 params=params / GIB, grads=grads / GIB, optimizer=optim / GIB, activations=act / GIB, comm=comm / GIB,
                 step_temp=step_temp / GIB, overhead=overhead / GIB, total=total / GIB, host=host / GIB)
    e.fits = e.total <= gpu_memory_gb * headroom
    return e


def plan(s: Shape, *, world: int, gpu_memory_gb: float, seq: int, rows: int, headroom: float = HEADROOM,
         precision: str = "bf16", attn: str = "sdpa", dropout: float = 0.0, head: str = "causal",
         device: str = "cuda", overhead_gb: float | None = None) -> Plan:
    """Every setting's estimate, and the first of ``LADDER`` that fits (None: nothing does)."""
    kw = dict(world=world, seq=seq, rows=rows, gpu_memory_gb=gpu_memory_gb, headroom=headroom, precision=precision,
              attn=attn, dropout=dropout, head=head, device=device, overhead_gb=overhead_gb)
    p = Plan(model=s.name, parameters=parameter_count(s, head), head=head, gpus=world, gpu_memory_gb=gpu_memory_gb,
             headroom=headroom, usable_gb=gpu_memory_gb * headroom, seq_len=seq, micro_batch_rows=rows,
             precision=precision if device == "cuda" else "fp32", attn=attn, device=device,
             estimates=[estimate(s, st, **kw) for st in ALL])
    p.recommended = next((st.label for st in LADDER if p.get(st).fits), None)
    return p


def micro_batch_rows(cfg: dict, head: str) -> int:
    """Rows in one forward pass: ``micro_batch_size``, doubled for the reward model ([chosen; rejected])."""
    return int(cfg.get("micro_batch_size") or 1) * (2 if head == "reward" else 1)


def setting_of(cfg: dict) -> Setting:
    """The stage config's parallelism keys (absent from older configs: plain DDP)."""
    par = str(cfg.get("parallelism") or "ddp").lower()
    if par not in ("ddp", "fsdp"):
        raise CumedError(f"parallelism: {par} is not known; use ddp or fsdp")
    return Setting(par, bool(cfg.get("activation_checkpointing")), bool(cfg.get("cpu_offload")))


def _budget(cfg: dict, world: int) -> tuple[float | None, str, str]:
    """(GiB per process, device kind, why skipped). ``gpu_memory_gb`` set: plan for GPUs of that size,
    wherever this runs (a CPU dry run of a GPU job). Unset: the CUDA device's own memory; on CPU, the
    host RAM available now divided among this host's processes -- a CPU run that exceeds it swaps or is
    killed, so it is the honest budget."""
    if cfg.get("gpu_memory_gb") is not None:
        return float(cfg["gpu_memory_gb"]), "cuda", ""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB, "cuda", ""
    try:
        import psutil
    except ImportError:
        return None, "cpu", "psutil is not installed, so host RAM is unknown"
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or world)
    return psutil.virtual_memory().available / GIB / max(local, 1), "cpu", ""


def check_fits(cfg: dict, tokenizer_or_vocab, model_source: str | Path | None, world_size: int,
               head: str = "causal") -> Plan | None:
    """The preflight: raise a one-line ``CumedError`` when the config's setting cannot fit; else the plan
    (None, with nothing checked, only where no budget is known: CPU without psutil)."""
    vocab = tokenizer_or_vocab if isinstance(tokenizer_or_vocab, int) or tokenizer_or_vocab is None else len(tokenizer_or_vocab)
    shape = resolve_shape(model_source, cfg, vocab)
    world = int(cfg.get("gpus") or world_size or 1)
    budget, device, why = _budget(cfg, world)
    if budget is None:
        warnings.warn(f"memory check skipped: {why}; set gpu_memory_gb to check against a size", stacklevel=2)
        return None
    setting = setting_of(cfg)
    headroom = float(cfg.get("memory_headroom") or HEADROOM)
    p = plan(shape, world=world, gpu_memory_gb=budget, seq=int(cfg.get("block_size") or 2048), rows=micro_batch_rows(cfg, head),
             headroom=headroom, precision=str(cfg.get("precision") or "fp32"), attn=str(cfg.get("attn_implementation") or "sdpa"),
             dropout=float(cfg.get("dropout") or 0.0), head=head, device=device)
    e = p.get(setting)
    if e.fits:
        return p
    raise CumedError(refusal(p, setting))


def _components(e: Estimate) -> str:
    parts = [f"params {e.params:.1f}", f"grads {e.grads:.1f}", f"optimizer {e.optimizer:.1f}",
             f"activations {e.activations:.1f}", f"{'buckets' if e.parallelism == 'ddp' else 'gathered'} {e.comm:.1f}"]
    if e.step_temp > e.activations + e.comm:
        parts.append(f"AdamW step temporaries {e.step_temp:.1f}")
    if e.overhead:
        parts.append(f"CUDA {e.overhead:.1f}")
    return ", ".join(parts)


def refusal(p: Plan, setting: Setting) -> str:
    e = p.get(setting)
    size = f"{p.parameters / 1e9:.1f}B" if p.parameters >= 1e9 else f"{p.parameters / 1e6:.1f}M"
    where = f"{p.gpus} GPU{'s' if p.gpus != 1 else ''}" if p.device == "cuda" else f"{p.gpus} CPU process{'es' if p.gpus != 1 else ''}"
    unit = "GPU" if p.device == "cuda" else "process"
    head = (f"{p.model} ({size} parameters) under {setting.label} on {where} needs {e.total:.1f} GiB per {unit} "
            f"({_components(e)}) > {p.usable_gb:.1f} GiB usable ({p.headroom:g} x {p.gpu_memory_gb:.1f} GiB)")
    if e.note:
        head += f" ({e.note})"
    if p.recommended:
        r = next(st for st in LADDER if st.label == p.recommended)
        return f"{head}: set {r.config_keys()} (fits: {p.get(r).total:.1f} GiB), or run `cumed train plan`"
    best = min((x for x in p.estimates if x.supported), key=lambda x: x.total)
    return (f"{head}: no setting fits (smallest: {best.setting} at {best.total:.1f} GiB); use more GPUs, a smaller "
            f"block_size ({p.seq_len}) or micro_batch_size, or see `cumed train plan`")
