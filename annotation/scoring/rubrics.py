"""The rubrics a model grades documents with: Chinese, additive 0-5, a one-line reason, JSON reply.

- ``quality`` adapts FineWeb-Edu's additive 5-point educational-value prompt (Penedo et al. 2024,
  "The FineWeb Datasets", the annotation prompt of HuggingFaceFW/fineweb-edu-classifier) to Chinese
  medicine: one point per criterion met, so a grader cannot jump to 5 without the lower ones;
  FineWeb-Edu keeps documents scoring 3 or more, and so does the default threshold here.
- ``relevance`` turns the relevance review rule of this project (human medicine or not:
  ``curation/relevance/labels/RULE.md``, which the committed hand labels follow) into the same
  additive form: decide by whom the text is for (patients and people: medical; animals, farms,
  plants, machines: not).

The reply is one JSON object ``{"score": 0-5, "reason": "..."}`` (``annotation.scoring.replies``
checks it). A rubric's ``version`` changes whenever its text does; the labels' lineage records it
and the sha256 of the text, so labels from two wordings are never mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass

from cumed.errors import CumedError
from cumed.hashing import sha256_text

REPLY_FORMAT = ('只输出一行 JSON，不要输出其他内容，格式：{"score": 0到5的整数, "reason": "一句话理由（不超过50字）"}')


@dataclass(frozen=True)
class Rubric:
    name: str
    version: str
    threshold: float  # score >= threshold -> keep
    system: str
    criteria: str

    @property
    def text(self) -> str:
        return f"{self.system}\n\n{self.criteria}\n\n{REPLY_FORMAT}"

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)

    def messages(self, text: str, max_chars: int) -> list[dict]:
        """The chat a document becomes: the rubric as the system turn, the (cut) text as the user turn."""
        body = text if len(text) <= max_chars else text[:max_chars] + f"\n……（已截断，原文共 {len(text)} 字）"
        return [{"role": "system", "content": self.text},
                {"role": "user", "content": f"待评估文本：\n<<<\n{body}\n>>>\n\n{REPLY_FORMAT}"}]


QUALITY = Rubric(
    name="quality", version="quality-v1", threshold=3.0,
    system=("你是医学数据审核专家。下面是一段准备用于训练中文医学大模型的文本。请用下面的累加式 5 分制评估它作为"
            "医学学习材料的质量：每满足一条标准加 1 分，从第一条开始依次累加。"),
    criteria=("- 加 1 分：文本提供了一些与医学或健康相关的基本信息，即使夹杂广告、导航、推广等无关内容。\n"
              "- 再加 1 分：文本涉及具体的医学内容（疾病、症状、检查、诊断、治疗、药物、护理），但零散、不完整，"
              "或与大量无关内容混杂。\n"
              "- 第 3 分：内容连贯、基本准确，介绍了医学关键概念或给出了合理的就医建议，适合作为医学学习材料，"
              "即使不够全面。\n"
              "- 第 4 分：结构清晰、信息准确且有一定深度，类似教材、诊疗指南或医生的专业解答，几乎没有无关内容，"
              "没有不安全的建议。\n"
              "- 第 5 分：专业、准确、系统，相当于权威教科书或临床指南的水平，可直接用于医学模型训练。\n"
              "若文本含有明显的医学错误、不安全的用药或治疗建议、个人隐私信息，或是空洞的模板化套话，"
              "总分不超过 2 分。"),
)

RELEVANCE = Rubric(
    name="relevance", version="relevance-v1", threshold=3.0,
    system=("你是医学数据审核专家。下面是一段候选训练文本。请用下面的累加式 5 分制评估它与人类医学的相关程度："
            "每满足一条标准加 1 分，从第一条开始依次累加。判断依据是文本的目的：服务于患者和人类健康的算医学；"
            "服务于动物养殖、农业、植物、工程、数学等的不算。"),
    criteria=("- 加 1 分：文本提到健康、疾病或生物医学话题，即使主旨不是人类医学。\n"
              "- 再加 1 分：文本的主题是人类医学或健康：临床医学、人类疾病（诊断、治疗、机制、流行病学）、护理、"
              "康复、公共卫生、用于人的药物或中医药、医疗器械与影像、以人类疾病为目标的动物模型研究。\n"
              "- 第 3 分：文本的主要目的明确是服务患者或人类健康（而不是畜牧兽医、农业、食品工艺、工程或纯基础生物学）。\n"
              "- 第 4 分：文本以临床知识为主（症状、检查、诊断、治疗、用药、预后），医生或患者可以直接使用。\n"
              "- 第 5 分：文本专业、聚焦，是训练中文医学大模型的理想材料。\n"
              "畜牧兽医、动物营养、农业、工程故障诊断、教育测量等与人类医学无关的文本得 0 分。"),
)

RUBRICS = {r.name: r for r in (QUALITY, RELEVANCE)}


def get_rubric(name: str) -> Rubric:
    if name not in RUBRICS:
        raise CumedError(f"--rubric {name!r}: use one of {', '.join(RUBRICS)}")
    return RUBRICS[name]
