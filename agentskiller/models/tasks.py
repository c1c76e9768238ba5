"""Task templates, instances, tasks and queries (steps s14-s17): the boundary models.

Vocabulary (DESIGN.md): a *template* is a trajectory plus an abstract instruction with
``{slot}`` placeholders; an *instance* fills the slots with values from the database and
fixes the golden calls' arguments; a *task* is an instance whose golden calls executed
cleanly on a fresh state; a *query* is a task rendered for training (persona, scenario,
first user message).

Slots are derived in code from the trajectory (:mod:`agentskiller.steps.tasks.task_env`), never
invented by the model: ``kind`` says where a slot's value comes from.

* ``record``: the primary key of a record the trajectory acts on (the user's own ID, the
  appointment to cancel, the clinician to book with). ``table`` names its table.
* ``value``: a value the user supplies (a new date, a reason); ``column`` is the column it
  is written to or filtered on.
* ``descriptor``: ``{Table.column}`` - an attribute of a record the trajectory acts on,
  used to describe a record whose ID the user does not hold ("my appointment on ...").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SlotKind = Literal["record", "value", "descriptor"]
#: what a task asks of the assistant: writes (``action``), a read-only answer (``lookup``),
#: declining a write the policy forbids (``refusal``), stopping at a failed authorization
#: (``auth_failure``)
TaskKind = Literal["action", "lookup", "refusal", "auth_failure"]
TASK_KINDS: tuple[str, ...] = ("action", "lookup", "refusal", "auth_failure")
CRITERIA = ("realistic", "trajectory_faithful", "policy_compliant", "unambiguous")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Slot(_Model):
    name: str
    kind: SlotKind
    table: str
    column: str
    #: tool calls (indices into the trajectory) whose arguments take this value
    calls: list[int] = Field(default_factory=list)
    required: bool = True
    #: True for a relationship table's primary key: the user knows it only when the
    #: template lists it in ``user_holds`` (a booking reference, say)
    internal_id: bool = False
    description: str = ""


# ----------------------------------------------------------------- s14 answers
class TemplateDraft(_Model):
    """What the text model writes for one trajectory (task ``s14.template``)."""

    instruction: str = Field(min_length=1)
    reason_for_call: str = Field(min_length=1)
    #: record slots of relationship tables the user knows by ID (e.g. a booking reference)
    user_holds: list[str] = Field(default_factory=list)
    #: the instruction has the user change their mind about a record the same task creates
    #: ("book it ... actually, make it Friday"); only then may the trajectory change it
    self_correction: bool = False


class JudgeVerdict(_Model):
    """The judge's answer (task ``s14.judge``): 1-5 per criterion plus the problems found."""

    realistic: int = Field(ge=1, le=5)
    trajectory_faithful: int = Field(ge=1, le=5)
    policy_compliant: int = Field(ge=1, le=5)
    unambiguous: int = Field(ge=1, le=5)
    problems: list[str] = Field(default_factory=list)

    def scores(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in CRITERIA}


# ------------------------------------------------------------------ artifacts
class TaskTemplate(_Model):
    template_id: str
    trajectory: list[str]
    slots: list[Slot]
    status: Literal["accepted", "rejected", "failed"]
    instruction: str = ""
    reason_for_call: str = ""
    user_holds: list[str] = Field(default_factory=list)
    self_correction: bool = False
    scores: dict[str, int] = Field(default_factory=dict)
    score: float | None = None
    problems: list[str] = Field(default_factory=list)
    reason: str | None = None
    #: cross-domain: values the other service's result hands over (s11's links, with ``call``
    #: the index into ``trajectory``): ``[{from: {call, field}, to: {call, param}, relation}]``
    links: list[dict[str, Any]] = Field(default_factory=list)
    storyline: str = ""


class Resolve(_Model):
    """An argument that only exists at execution time: the value of ``field`` in the
    result of call ``call`` (e.g. the ID a create returned). Replay reads it the same way."""

    call: int = Field(ge=0)
    field: str


class GoldenCall(_Model):
    name: str
    arguments: dict[str, Any]
    #: argument name -> where its value comes from at execution time
    resolve: dict[str, Resolve] = Field(default_factory=dict)
    #: ``refused``: the server must refuse this call (the ID an ``auth_failure`` user gives)
    expect: Literal["ok", "refused"] = "ok"


class ForbiddenCall(_Model):
    """What a ``refusal`` user asks for: the write the policy forbids. It is no golden call;
    s16 proves the server refuses it after the golden path, with the state unchanged."""

    name: str
    arguments: dict[str, Any]
    #: the policy rule that forbids it (``cancel_appointment.precondition``) and its member
    rule: str
    domain: str
    why: str


class AnswerItem(_Model):
    """One value a ``lookup`` user must be told: ``field`` of call ``call``'s result (a
    list result gives one item per record)."""

    call: int
    field: str
    value: Any


class Difficulty(_Model):
    calls: int
    writes: int
    #: arguments the assistant takes from an earlier call's result (lookups it must make)
    lookups: int
    domains: int


class Instance(_Model):
    instance_id: str
    template_id: str
    user_id: Any
    #: slot name -> concrete value (record IDs, user-supplied values, descriptors)
    values: dict[str, Any]
    #: label -> full record the task touches (``Patient``, ``Appointment``, ``Clinician``)
    records: dict[str, dict[str, Any]]
    calls: list[GoldenCall]
    task_kind: TaskKind = "action"
    #: slot names whose values the user states (the instruction must contain them): the
    #: slots the template uses, the values the calls take, and descriptors added so the
    #: user identifies a record among those a lookup returns
    states: list[str] = Field(default_factory=list)
    #: lookup: columns of the last call's result the user asks about
    asks: list[str] = Field(default_factory=list)
    refusal: ForbiddenCall | None = None
    #: links with ``call`` indices into ``calls``; an ``equal`` link is also a ``resolve`` rule
    links: list[dict[str, Any]] = Field(default_factory=list)


class Task(_Model):
    task_id: str
    template_id: str
    instance_id: str
    status: Literal["valid", "invalid"]
    user_id: Any = None
    #: the instance's slot values and records (s17 grounds the query in them)
    values: dict[str, Any] = Field(default_factory=dict)
    records: dict[str, dict[str, Any]] = Field(default_factory=dict)
    golden_calls: list[GoldenCall]
    expected_outputs: list[Any] = Field(default_factory=list)
    final_state_hash: str | None = None
    initial_state_hash: str | None = None
    failing_call: int | None = None
    reason: str | None = None
    task_kind: TaskKind = "action"
    states: list[str] = Field(default_factory=list)
    asks: list[str] = Field(default_factory=list)
    refusal: ForbiddenCall | None = None
    #: per golden call, argument -> where an agent gets its value: ``user``, ``call:i.path``
    #: (an earlier call's result), ``schema`` (a literal the tool allows), ``now``
    grounding: list[dict[str, str]] = Field(default_factory=list)
    expected_answer: list[AnswerItem] = Field(default_factory=list)
    difficulty: Difficulty | None = None
    #: links with ``call`` indices into ``golden_calls`` (see :class:`Instance`)
    links: list[dict[str, Any]] = Field(default_factory=list)


# ----------------------------------------------------------------- s17 answers
class Persona(_Model):
    name: str = Field(min_length=1)
    manner: str = Field(min_length=1)


class KnownFact(_Model):
    fact: str = Field(min_length=1)
    value: str


class QueryDraft(_Model):
    """What the user simulator writes for one task (task ``s17.query``)."""

    persona: Persona
    reason_for_call: str = Field(min_length=1)
    instruction: str = Field(min_length=1)
    known_facts: list[KnownFact]
    first_message: str = Field(min_length=1)
