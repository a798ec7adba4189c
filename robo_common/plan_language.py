"""The skill language of plans: a whitelist of skills, an ``ast``-based parser and the model output format.

Model output is data. Each plan line is parsed with :func:`ast.parse` and accepted only if it
is a single call of a whitelisted skill with keyword arguments whose values are string or
number literals; nothing is ever ``exec``/``eval``-ed.

Model output format (what the brain's models are prompted for, and trained on)::

    Reasoning: The red block is left of the blue bowl. Pick it, then place it in the bowl.
    Plan:
    pick(object="red block") @ grasp=(61, 88)
    place(target="blue bowl") @ place=(30, 40)
    done()

* ``Reasoning:`` is optional; its text runs until the ``Plan:`` line (several lines allowed).
* ``Plan:`` starts the plan. When neither header is present the whole text is the plan.
* One skill call per line; blank lines and ``#`` comments are skipped; a leading list marker
  (``1.``, ``2)``, ``-``, ``*``) is stripped.
* Keypoints follow `` @ `` as ``name=(u, v)`` pairs (pixel column, row in the camera image the
  model was shown), separated by commas or spaces; a skill with exactly one keypoint may write
  just ``@ (u, v)``. Every keypoint the skill's :class:`SkillSpec` names is required.
* ``done()`` ends the plan (nothing may follow it); it is appended when missing.

Errors are :class:`PlanParseError` with the line number in the model output, the offending
text and what was expected, short enough to be fed back to the model verbatim
(:func:`generate_with_retry`).
"""

from __future__ import annotations

import ast
import logging
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from robo_common.constants import BASE_FRAME
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

logger = logging.getLogger(__name__)

T = TypeVar("T")
ArgValue = str | float

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _\-]{0,63}$")
"""Allowed string argument values: object and target names (letters, digits, space, ``_``, ``-``)."""

_LIST_MARKER_RE = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*])\s+")
_NUM = r"[-+]?\d+(?:\.\d+)?"
_KP_RE = re.compile(rf"(?:([A-Za-z_]\w*)\s*=\s*)?\(\s*(?:u\s*=\s*)?({_NUM})\s*,\s*(?:v\s*=\s*)?({_NUM})\s*\)")
_KP_LIST_RE = re.compile(rf"^\s*{_KP_RE.pattern}(?:\s*,?\s*{_KP_RE.pattern})*\s*$")
_SECTION_RE = re.compile(r"^\s*(reasoning|plan)\s*:\s?(.*)$", re.IGNORECASE)


# ---------------------------------------------------------------- the whitelist
@dataclass(frozen=True)
class ArgSpec:
    """One keyword argument of a skill.

    Attributes:
        name: Keyword.
        kind: ``"str"`` (a name matching :data:`NAME_RE`) or ``"float"`` (int or float literal).
        choices: Allowed values (strings only), or empty for any name.
        low: Smallest allowed number (floats only).
        high: Largest allowed number (floats only).
    """

    name: str
    kind: str = "str"
    choices: tuple[str, ...] = ()
    low: float = float("-inf")
    high: float = float("inf")

    def __post_init__(self) -> None:
        if self.kind not in ("str", "float"):
            raise ValueError(f"ArgSpec {self.name!r}: kind must be 'str' or 'float', got {self.kind!r}")
        if self.choices and self.kind != "str":
            raise ValueError(f"ArgSpec {self.name!r}: choices are only for str arguments")
        if not self.low <= self.high:
            raise ValueError(f"ArgSpec {self.name!r}: low {self.low} exceeds high {self.high}")


@dataclass(frozen=True)
class SkillSpec:
    """A skill of the plan language: its arguments and the keypoints it needs.

    Attributes:
        name: Skill name, the function name in plan lines.
        args: Keyword arguments, all required, in canonical order.
        keypoints: Names of the keypoints a plan line of this skill must carry.
        doc: One line for the model's system prompt.
    """

    name: str
    args: tuple[ArgSpec, ...] = ()
    keypoints: tuple[str, ...] = ()
    doc: str = ""

    def arg(self, name: str) -> ArgSpec | None:
        """Return the argument spec called ``name``, or None."""
        return next((a for a in self.args if a.name == name), None)

    def signature(self) -> str:
        """``push(object: str, direction: left|right|forward|backward)`` for prompts and errors."""
        parts = [f"{a.name}: {'|'.join(a.choices) if a.choices else a.kind}" for a in self.args]
        return f"{self.name}({', '.join(parts)})"


DIRECTIONS = ("left", "right", "forward", "backward")
"""Push directions in the base frame: forward is +x, left is +y."""

SKILLS: dict[str, SkillSpec] = {
    s.name: s
    for s in (
        SkillSpec("pick", (ArgSpec("object"),), ("grasp",), "grasp an object; grasp = pixel of the object centre"),
        SkillSpec("place", (ArgSpec("target"),), ("place",), "put the held object on/in a target; place = pixel"),
        SkillSpec(
            "push",
            (ArgSpec("object"), ArgSpec("direction", choices=DIRECTIONS)),
            ("push_start", "push_end"),
            "push an object without grasping; push_start behind it, push_end where the hand stops",
        ),
        SkillSpec("move_to", (ArgSpec("target"),), ("goal",), "move the hand above a target; goal = pixel"),
        SkillSpec("open_gripper", doc="open the gripper"),
        SkillSpec("close_gripper", doc="close the gripper"),
        SkillSpec("done", doc="the task is complete; always the last line"),
    )
}
"""The whitelist: every skill a plan may use."""


# ---------------------------------------------------------------- errors and parsed data
class PlanParseError(ValueError):
    """A plan line (or the whole output) is not valid; the message names the line and what was expected."""

    def __init__(self, line: int, message: str, text: str = "") -> None:
        self.line = line
        self.text = text
        self.detail = message
        where = f"line {line}: " if line > 0 else ""
        super().__init__(f"{where}{message}")


@dataclass
class SkillCall:
    """A validated skill call: ``pick(object="red block")``."""

    skill: str
    args: dict[str, ArgValue] = field(default_factory=dict)

    def code(self) -> str:
        """Canonical pseudo-code of the call (arguments in the skill's order, strings double-quoted)."""
        return format_call(self)


@dataclass
class PlanStep:
    """One parsed plan line: the call and its keypoint pixels ``{name: (u, v)}``."""

    call: SkillCall
    pixels: dict[str, tuple[float, float]]
    line: int


@dataclass
class ParsedOutput:
    """Model output split into reasoning and validated plan steps."""

    reasoning: str
    steps: list[PlanStep]


@dataclass(frozen=True)
class TextLimits:
    """Size guard of model output and instructions.

    Attributes:
        max_chars: Longest accepted text.
        max_lines: Most lines accepted.
        max_plan_lines: Most plan steps accepted.
        max_line_chars: Longest accepted plan line.
    """

    max_chars: int = 8000
    max_lines: int = 200
    max_plan_lines: int = 32
    max_line_chars: int = 240

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_lines", "max_plan_lines", "max_line_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"TextLimits.{name} must be >= 1, got {getattr(self, name)!r}")


# ---------------------------------------------------------------- text guard
def check_text(text: str, limits: TextLimits = TextLimits(), what: str = "model output") -> str:
    """Return ``text`` with normalised newlines, or raise :class:`PlanParseError` if it is unsafe.

    Rejects non-strings, text over ``limits.max_chars`` or ``limits.max_lines``, and control
    characters other than newline and tab.
    """
    if not isinstance(text, str):
        raise PlanParseError(0, f"{what} must be text, got {type(text).__name__}")
    if len(text) > limits.max_chars:
        raise PlanParseError(0, f"{what} is {len(text)} characters; at most {limits.max_chars} allowed")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for i, line in enumerate(text.split("\n"), 1):
        bad = next((c for c in line if c != "\t" and unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            raise PlanParseError(i, f"control character {bad!r} in {what}; only printable text is allowed",
                                 line[:80])
    n_lines = text.count("\n") + 1
    if n_lines > limits.max_lines:
        raise PlanParseError(0, f"{what} has {n_lines} lines; at most {limits.max_lines} allowed")
    return text


# ---------------------------------------------------------------- one call
def _literal(node: ast.expr) -> ArgValue | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float) and not isinstance(
        node.value, bool
    ):
        return node.value if isinstance(node.value, str) else float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal(node.operand)
        if isinstance(inner, float):
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


_NODE_WORDS: dict[type, str] = {
    ast.Name: "a variable name",
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Call: "a nested call",
    ast.Starred: "a starred argument",
    ast.Lambda: "a lambda",
    ast.BinOp: "an expression",
}


def _describe(node: ast.AST) -> str:
    return _NODE_WORDS.get(type(node), f"a {type(node).__name__} expression")


def _expected_skills(skills: dict[str, SkillSpec]) -> str:
    return ", ".join(skills)


def _check_value(spec: SkillSpec, arg: ArgSpec, value: ArgValue, lineno: int, text: str) -> ArgValue:
    if arg.kind == "str":
        if not isinstance(value, str):
            raise PlanParseError(lineno, f"{spec.name}({arg.name}=...) must be a string, got {value!r}", text)
        value = value.strip()
        if arg.choices and value not in arg.choices:
            raise PlanParseError(
                lineno, f"{spec.name}({arg.name}={value!r}) is not allowed; expected one of {', '.join(arg.choices)}",
                text)
        if not NAME_RE.match(value):
            raise PlanParseError(
                lineno, f"{spec.name}({arg.name}={value!r}) is not a valid name; expected 1-64 letters, digits, "
                "spaces, '_' or '-'", text)
        return value
    if not isinstance(value, float):
        raise PlanParseError(lineno, f"{spec.name}({arg.name}=...) must be a number, got {value!r}", text)
    if not arg.low <= value <= arg.high:
        raise PlanParseError(lineno, f"{spec.name}({arg.name}={value}) is out of range [{arg.low}, {arg.high}]", text)
    return value


def _call_node(line: str, lineno: int, skills: dict[str, SkillSpec]) -> ast.Call:
    example = 'pick(object="red block")'
    try:
        tree = ast.parse(line.strip(), mode="eval")
    except SyntaxError as exc:
        raise PlanParseError(lineno, f"not a skill call ({exc.msg}): {line.strip()!r}; expected e.g. {example}",
                             line) from None
    call = tree.body
    if not isinstance(call, ast.Call):
        raise PlanParseError(lineno, f"expected a single skill call such as {example}, got {_describe(call)}: "
                             f"{line.strip()!r}", line)
    if not isinstance(call.func, ast.Name):
        raise PlanParseError(lineno, f"{_describe(call.func)} is not allowed as a skill name: {line.strip()!r}; "
                             f"expected one of {_expected_skills(skills)}", line)
    return call


def parse_call(line: str, lineno: int = 1, skills: dict[str, SkillSpec] | None = None) -> SkillCall:
    """Parse and validate one plan line (without keypoints) against the whitelist.

    Raises:
        PlanParseError: naming the line, the offending text and what was expected.
    """
    skills = SKILLS if skills is None else skills
    call = _call_node(line, lineno, skills)
    name = call.func.id  # type: ignore[union-attr]
    spec = skills.get(name)
    if spec is None:
        raise PlanParseError(lineno, f"unknown skill {name!r}; expected one of {_expected_skills(skills)}", line)
    if call.args:
        raise PlanParseError(lineno, f"{name}() takes keyword arguments only, got {_describe(call.args[0])} "
                             f"as a positional argument; expected {spec.signature()}", line)
    args: dict[str, ArgValue] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise PlanParseError(lineno, f"{name}(**...) is not allowed; expected {spec.signature()}", line)
        arg = spec.arg(kw.arg)
        if arg is None:
            raise PlanParseError(lineno, f"{name}() got unknown argument {kw.arg!r}; expected {spec.signature()}",
                                 line)
        value = _literal(kw.value)
        if value is None:
            raise PlanParseError(lineno, f"{name}({kw.arg}=...) must be a string or number literal, got "
                                 f"{_describe(kw.value)}", line)
        args[kw.arg] = _check_value(spec, arg, value, lineno, line)
    missing = [a.name for a in spec.args if a.name not in args]
    if missing:
        raise PlanParseError(lineno, f"{name}() is missing argument {missing[0]!r}; expected {spec.signature()}",
                             line)
    return SkillCall(name, {a.name: args[a.name] for a in spec.args})


def object_argument(code: str) -> str:
    """The ``object`` argument of one plan line (``pick(object="red block")`` -> ``red block``); "" when
    the line has none or does not parse."""
    try:
        return str(parse_call(code).args.get("object", ""))
    except PlanParseError:
        return ""


def format_call(call: SkillCall) -> str:
    """Return the canonical pseudo-code of a call, e.g. ``push(object="red block", direction="left")``."""
    parts = []
    for key, value in call.args.items():
        parts.append(f'{key}="{value}"' if isinstance(value, str) else f"{key}={float(value):g}")
    return f"{call.skill}({', '.join(parts)})"


# ---------------------------------------------------------------- keypoints on a line
def _split_keypoints(line: str) -> tuple[str, str]:
    """Split ``code @ keypoints`` at the last ``@`` whose right side is a keypoint list."""
    pos = line.rfind("@")
    while pos >= 0:
        if _KP_LIST_RE.match(line[pos + 1:]):
            return line[:pos], line[pos + 1:]
        pos = line.rfind("@", 0, pos)
    return line, ""


def _parse_pixels(spec: SkillSpec, text: str, lineno: int, line: str) -> dict[str, tuple[float, float]]:
    pixels: dict[str, tuple[float, float]] = {}
    for name, u, v in _KP_RE.findall(text):
        if not name:
            if len(spec.keypoints) != 1:
                raise PlanParseError(lineno, f"{spec.name}() needs named keypoints "
                                     f"{', '.join(k + '=(u, v)' for k in spec.keypoints)}", line)
            name = spec.keypoints[0]
        if name not in spec.keypoints:
            want = ", ".join(spec.keypoints) or "none"
            raise PlanParseError(lineno, f"{spec.name}() has no keypoint {name!r}; expected {want}", line)
        if name in pixels:
            raise PlanParseError(lineno, f"keypoint {name!r} given twice", line)
        pixels[name] = (float(u), float(v))
    return pixels


def parse_step(line: str, lineno: int, skills: dict[str, SkillSpec] | None = None,
               require_keypoints: bool = True) -> PlanStep:
    """Parse one plan line with its `` @ name=(u, v)`` keypoints.

    Raises:
        PlanParseError: on an invalid call, unknown or duplicate keypoints, or (when
            ``require_keypoints``) a keypoint the skill needs but the line lacks.
    """
    skills = SKILLS if skills is None else skills
    code, kp_text = _split_keypoints(line)
    call = parse_call(code, lineno, skills)
    spec = skills[call.skill]
    pixels = _parse_pixels(spec, kp_text, lineno, line)
    missing = [k for k in spec.keypoints if k not in pixels]
    if require_keypoints and missing:
        example = " ".join(f"{k}=(u, v)" for k in spec.keypoints)
        raise PlanParseError(lineno, f"{call.skill}() is missing keypoint {missing[0]!r}; write "
                             f"{call.code()} @ {example} with pixel column u and row v", line)
    return PlanStep(call, pixels, lineno)


# ---------------------------------------------------------------- whole outputs
def _sections(lines: list[str]) -> tuple[list[str], int]:
    """Return ``(reasoning lines, index of the first plan line)`` from the section headers."""
    reasoning: list[str] = []
    mode, start = "", 0
    for i, line in enumerate(lines):
        m = _SECTION_RE.match(line)
        head = m.group(1).lower() if m else ""
        if head == "plan":
            if m.group(2).strip():
                raise PlanParseError(i + 1, "put plan lines below the 'Plan:' header, one call per line", line)
            return reasoning, i + 1
        if head == "reasoning" and mode == "":
            mode = "reasoning"
            reasoning.append(m.group(2))
        elif mode == "reasoning":
            reasoning.append(line)
    if mode == "reasoning":
        raise PlanParseError(0, "missing 'Plan:' section after 'Reasoning:'; write 'Plan:' then one skill call "
                             "per line")
    return [], start


def parse_model_output(text: str, limits: TextLimits = TextLimits(), skills: dict[str, SkillSpec] | None = None,
                       require_keypoints: bool = True) -> ParsedOutput:
    """Split model output into reasoning and validated plan steps (see the module docstring).

    Raises:
        PlanParseError: for the first invalid line, an empty plan, too many steps, or a
            step after ``done()``.
    """
    skills = SKILLS if skills is None else skills
    lines = check_text(text, limits).split("\n")
    reasoning, start = _sections(lines)
    steps: list[PlanStep] = []
    for i in range(start, len(lines)):
        raw = lines[i]
        line = _LIST_MARKER_RE.sub("", raw, count=1).strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > limits.max_line_chars:
            raise PlanParseError(i + 1, f"line is {len(line)} characters; at most {limits.max_line_chars}",
                                 line[:80])
        if steps and steps[-1].call.skill == "done":
            raise PlanParseError(i + 1, f"nothing may follow done(), got {line!r}", line)
        steps.append(parse_step(line, i + 1, skills, require_keypoints))
        if len(steps) > limits.max_plan_lines:
            raise PlanParseError(i + 1, f"plan has more than {limits.max_plan_lines} steps")
    if not steps:
        raise PlanParseError(0, "the plan is empty; expected 'Plan:' followed by skill calls such as "
                             'pick(object="red block") @ grasp=(u, v), ending with done()')
    if steps[-1].call.skill != "done":
        steps.append(PlanStep(SkillCall("done"), {}, 0))
    return ParsedOutput("\n".join(reasoning).strip(), steps)


def parse_plan_text(text: str, limits: TextLimits = TextLimits()) -> list[SkillCall]:
    """Parse plan code (one call per line, no keypoints required) into validated calls."""
    return [s.call for s in parse_model_output(text, limits, require_keypoints=False).steps]


def format_step(code: str, pixels: dict[str, tuple[float, float]]) -> str:
    """One plan line of the model output format: ``code @ name=(u, v) ...``."""
    if not pixels:
        return code
    kps = ", ".join(f"{name}=({round(u, 1):g}, {round(v, 1):g})" for name, (u, v) in pixels.items())
    return f"{code} @ {kps}"


def format_plan_text(plan: PlanData | Sequence[SkillCall], reasoning: str | None = None) -> str:
    """Format a plan (or calls) in the model output format; :func:`parse_model_output` reads it back.

    Keypoints with unknown pixels (``u < 0``) are left out. ``reasoning`` overrides the plan's.
    """
    if isinstance(plan, PlanData):
        lines = [format_step(s.code, {k.name: (k.u, k.v) for k in s.keypoints if k.u >= 0 and k.v >= 0})
                 for s in plan.subtasks]
        reasoning = plan.reasoning if reasoning is None else reasoning
    else:
        lines = [c.code() for c in plan]
    head = f"Reasoning: {reasoning.strip()}\n" if reasoning else ""
    return head + "Plan:\n" + "\n".join(lines)


# ---------------------------------------------------------------- to PlanData
Locate = Callable[[str, float, float], KeypointData]
"""``locate(name, u, v) -> KeypointData`` lifts a pixel keypoint to 3D; raises ``ValueError`` if it cannot."""


def plan_from_model_output(text: str, *, instruction: str, locate: Locate, plan_id: str | None = None,
                           revision: int = 0, stamp_ns: int = 0, limits: TextLimits = TextLimits(),
                           frame_id: str = BASE_FRAME) -> PlanData:
    """Parse model output and lift its keypoints to 3D: the :class:`PlanData` the cerebellum executes.

    Subtask indexes run from 0. A keypoint that ``locate`` rejects becomes a
    :class:`PlanParseError` on its line, so it can be fed back to the model like a syntax error.
    """
    parsed = parse_model_output(text, limits)
    subtasks = []
    for i, step in enumerate(parsed.steps):
        kps = []
        for name, (u, v) in step.pixels.items():
            try:
                kps.append(locate(name, u, v))
            except ValueError as exc:
                raise PlanParseError(step.line, f"keypoint {name}=({u:g}, {v:g}) of {step.call.code()}: {exc}",
                                     format_step(step.call.code(), step.pixels)) from None
        subtasks.append(SubtaskData(i, step.call.code(), step.call.skill, kps))
    return PlanData(plan_id or uuid.uuid4().hex, revision, instruction, parsed.reasoning, subtasks,
                    frame_id=frame_id, stamp_ns=stamp_ns)


# ---------------------------------------------------------------- prompt text and retry
def skill_language_description(skills: dict[str, SkillSpec] | None = None) -> str:
    """The skill table and output format as text for a system prompt."""
    skills = SKILLS if skills is None else skills
    rows = []
    for spec in skills.values():
        kps = " @ " + " ".join(f"{k}=(u, v)" for k in spec.keypoints) if spec.keypoints else ""
        rows.append(f"- {spec.signature()}{kps}: {spec.doc}")
    return (
        "Skills (the only allowed calls; keyword arguments with string literals):\n" + "\n".join(rows) + "\n"
        "Answer in this format:\nReasoning: <short step-by-step reasoning>\nPlan:\n<one skill call per line, "
        "each followed by its keypoints as pixel column u and row v in the image>\ndone()\n"
        'Example:\nReasoning: The red block is on the left; the blue bowl is on the right.\nPlan:\n'
        'pick(object="red block") @ grasp=(40, 70)\nplace(target="blue bowl") @ place=(90, 64)\ndone()'
    )


@dataclass
class RetryOutcome(Generic[T]):
    """Result of :func:`generate_with_retry`: the parsed value or the last error, with every raw output."""

    value: T | None
    outputs: list[str]
    errors: list[str]
    generate_s: list[float]

    @property
    def ok(self) -> bool:
        """True when an output parsed."""
        return self.value is not None


def retry_message(error: str) -> str:
    """The user message that feeds a parse error back to the model."""
    return (f"Your answer could not be used: {error}\nAnswer again in exactly the required format "
            "(Reasoning:, then Plan: with one skill call per line and its keypoints).")


def generate_with_retry(generate: Callable[[list[dict]], str], messages: list[dict],
                        parse: Callable[[str], T], max_retries: int = 1,
                        clock: Callable[[], float] | None = None) -> RetryOutcome[T]:
    """Generate, parse, and on a :class:`PlanParseError` feed the error back for up to ``max_retries`` retries.

    ``generate(messages) -> text``. The retry conversation is the original messages, the
    model's answer as an ``assistant`` turn and :func:`retry_message` as a ``user`` turn.
    Errors other than ``PlanParseError`` (back-end failures) propagate.
    """
    import time

    clock = clock or time.perf_counter
    outputs: list[str] = []
    errors: list[str] = []
    times: list[float] = []
    convo = list(messages)
    for attempt in range(max_retries + 1):
        t0 = clock()
        text = generate(convo)
        times.append(clock() - t0)
        outputs.append(text)
        try:
            return RetryOutcome(parse(text), outputs, errors, times)
        except PlanParseError as exc:
            errors.append(str(exc))
            logger.info("model output rejected (attempt %d/%d): %s", attempt + 1, max_retries + 1, exc)
            convo = [*messages, {"role": "assistant", "content": text[:2000]},
                     {"role": "user", "content": retry_message(str(exc))}]
    return RetryOutcome(None, outputs, errors, times)
