"""s11 trajectory fusion and s13 policy merge on a pair of two Patient domains.

The fixture (tests/fixtures/s11) holds DentalCareDesk and PharmacyCareLine from a finished
offline run: blueprints, tool graphs, policies and s16 tasks.
"""

from __future__ import annotations

import copy
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from agentskiller import artifacts, io
from agentskiller.jobs import StepContext
from agentskiller.llm.offline import provider as offline
from agentskiller.llm.offline.provider import handler, unregister
from agentskiller.models.bridge_rules import derive_bridge_rules
from agentskiller.steps.cross import s11_trajectory_fusion as s11
from agentskiller.steps.cross import s13_policy_merge as s13
from agentskiller.steps.domains.policy_markers import parse_policy, policy_for_tools

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "s11" / "outputs"
REPO = Path(__file__).resolve().parents[1]
A, B = "DentalCareDesk", "PharmacyCareLine"
PAIR = f"{A}+{B}"


def config(root: Path) -> dict:
    cfg = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    cfg["outputs_dir"] = str(root)
    cfg["llm"]["cache_dir"] = str(root / ".llm_cache")
    return cfg


@pytest.fixture
def root(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "outputs")
    r = tmp_path / "outputs"
    (r / "cross").mkdir()
    io.write_json(
        r / "cross/combinations.json",
        {"status": "ok", "pairs": [{"pair": PAIR, "domains": [A, B], "core_entity": "Patient"}]},
    )
    return r


def member_paths(root: Path, sub: str, ext: str = ".json") -> list[Path]:
    return [root / sub / f"{d}{ext}" for d in (A, B)]


class NoLLM:
    """Quarantined steps must not call the model."""

    def generate(self, *a, **k):
        raise AssertionError("the LLM was called for a quarantined pair")


def run_s11(root: Path, cfg: dict | None = None, llm=None, out: str = "cross") -> dict:
    ctx = StepContext.from_paths(
        "s11",
        cfg or config(root),
        inputs=dict(
            combos=root / "cross/combinations.json",
            blueprints=member_paths(root, "blueprints"),
            tool_graphs=member_paths(root, "tool_graphs"),
            tasks=member_paths(root, "tasks"),
            policies=member_paths(root, "policies", ".md"),
        ),
        outputs=dict(graph=root / out / PAIR / "tool_graph.json"),
        wildcards={"pair": PAIR},
        llm=llm,
    )
    try:
        s11.run(ctx)
    finally:
        if ctx._llm is not None and hasattr(ctx._llm, "close"):
            ctx._llm.close()
    return io.read_json(root / out / PAIR / "tool_graph.json")


def run_s13(root: Path, cfg: dict | None = None, llm=None, out: str = "cross") -> tuple[str, dict]:
    ctx = StepContext.from_paths(
        "s13",
        cfg or config(root),
        inputs=dict(
            blueprints=member_paths(root, "blueprints"),
            policies=member_paths(root, "policies", ".md"),
            policy_reports=member_paths(root, "policies"),
        ),
        outputs=dict(policy=root / out / PAIR / "policy.md", report=root / out / PAIR / "policy.json"),
        wildcards={"pair": PAIR},
        llm=llm,
    )
    try:
        s13.run(ctx)
    finally:
        if ctx._llm is not None and hasattr(ctx._llm, "close"):
            ctx._llm.close()
    return io.read_text(root / out / PAIR / "policy.md"), io.read_json(root / out / PAIR / "policy.json")


@contextmanager
def wrapped_handler(task: str, first_round):
    """Replace ``task``'s offline handler: round 0 answers ``first_round(real_answer)``,
    repair rounds go to the real handler (which sees the feedback)."""
    offline.load_handlers()
    real = offline.get_handler(task)

    def flawed(req):
        ans = real(req)
        return first_round(ans) if not req.feedback else ans

    unregister(task)
    handler(task)(flawed)
    try:
        yield
    finally:
        unregister(task)
        handler(task)(real)


def members(root: Path) -> list[s11.Member]:
    ms, reason = s11.load_members(
        member_paths(root, "blueprints"),
        member_paths(root, "tool_graphs"),
        member_paths(root, "tasks"),
        member_paths(root, "policies", ".md"),
    )
    assert reason is None
    return ms


# ------------------------------------------------------------------ s11
def test_fused_graph_shape_and_every_trajectory_interlocks(root):
    g = run_s11(root)
    assert g["status"] == "ok" and g["domain"] == PAIR and g["members"] == [A, B]
    io.validate(g, "tool_graph")  # the single-domain shape: s14 reads it unchanged
    io.validate(g, "fused_trajectories")
    cap = config(root)["tool_graph"]["max_trajectories"]
    assert 0 < g["kept"] == len(g["trajectories"]) == len(g["storylines"]) <= cap
    ms = members(root)
    for traj, story in zip(g["trajectories"], g["storylines"]):
        assert story["trajectory"] == traj and story["storyline"].strip()
        assert s11.check_trajectory(traj, ms, 6) == []
        assert {t.split("__")[0] for t in traj} == {A, B}
        for d in (A, B):
            own = [t for t in traj if t.startswith(d + "__")]
            assert own[0] == f"{d}__authorize_patient" and len(own) >= 2
        assert len(traj) <= 6 and len(set(traj)) == len(traj)
    # validated segments on both sides come first; both orders of the services occur
    assert g["storylines"][0]["segments"] == {A: "validated", B: "validated"}
    assert {t[0].split("__")[0] for t in g["trajectories"]} == {A, B}
    # nodes are every namespaced tool; bridge edges connect the services where storylines hand over
    assert f"{A}__book_appointment" in g["nodes"] and f"{B}__submit_prescription_fill" in g["nodes"]
    assert any(e["source"].startswith(A) and e["target"] == f"{B}__authorize_patient" for e in g["edges"])


def test_fusion_checks_catch_violations(root):
    ms = members(root)
    a, b = f"{A}__authorize_patient", f"{B}__authorize_patient"
    ok = [a, f"{A}__cancel_appointment", b, f"{B}__cancel_consultation"]
    assert s11.check_trajectory(ok, ms, 6) == []
    # B's tool before B's authorize
    errs = s11.check_trajectory([a, f"{A}__cancel_appointment", f"{B}__cancel_consultation", b], ms, 6)
    assert any(f"{B}__cancel_consultation comes before {b}" in e for e in errs)
    # unknown tool / un-namespaced tool
    assert any("has no tool 'fly_plane'" in e for e in s11.check_trajectory([a, f"{A}__fly_plane", b], ms, 6))
    assert any("not a namespaced tool" in e for e in s11.check_trajectory(["authorize_patient", b], ms, 6))
    # one member only, and a member that only authorizes
    assert any(f"{B} takes no part" in e for e in s11.check_trajectory([a, f"{A}__cancel_appointment"], ms, 6))
    assert any(
        "contributes only its authorization" in e
        for e in s11.check_trajectory([a, f"{A}__cancel_appointment", b], ms, 6)
    )
    # too long, repeated tool, path not in the member's graph
    long = [
        a,
        f"{A}__search_dentists",
        f"{A}__get_dentist_details",
        f"{A}__book_appointment",
        b,
        f"{B}__request_consultation",
        f"{B}__get_consultation",
    ]
    assert any("at most 6" in e for e in s11.check_trajectory(long, ms, 6))
    assert any("more than once" in e for e in s11.check_trajectory(ok + [f"{A}__cancel_appointment"], ms, 8))
    assert any(
        "no edge" in e
        for e in s11.check_trajectory(
            [a, f"{A}__cancel_appointment", f"{A}__book_appointment", b, f"{B}__cancel_consultation"], ms, 6
        )
    )
    # interleaving is fine as long as each member's own calls are valid
    inter = [a, b, f"{A}__cancel_appointment", f"{B}__cancel_consultation"]
    assert s11.check_trajectory(inter, ms, 6) == []
    # duplicates across the answer
    ans = s11.FusionAnswer(
        trajectories=[s11.FusedTrajectory(tools=ok, storyline="x"), s11.FusedTrajectory(tools=ok, storyline="y")]
    )
    assert any(e.startswith("1: ") and "duplicate" in e for e in s11.check_answer(ans, ms, 6))


def test_segment_that_failed_in_s16_is_rejected(root):
    tasks = io.read_json(root / f"tasks/{B}.json")
    for t in tasks["tasks"]:
        if [c["name"] for c in t["golden_calls"]] == ["authorize_patient", "cancel_consultation"]:
            t["status"] = "invalid"
    io.write_json(root / f"tasks/{B}.json", tasks)
    ms = members(root)
    seg = [
        f"{A}__authorize_patient",
        f"{A}__cancel_appointment",
        f"{B}__authorize_patient",
        f"{B}__cancel_consultation",
    ]
    assert any("failed every single-domain execution" in e for e in s11.check_trajectory(seg, ms, 6))
    g = run_s11(root)
    b_parts = [[t for t in traj if t.startswith(B + "__")] for traj in g["trajectories"]]
    assert g["status"] == "ok" and seg[2:] not in b_parts and len(b_parts) == g["kept"]


def test_fusion_repair_fixes_a_misordered_trajectory(root):
    def misorder(ans: dict) -> dict:
        ans = copy.deepcopy(ans)
        t = ans["trajectories"][0]["tools"]
        i = next(k for k, x in enumerate(t) if x.endswith("__authorize_patient") and k > 0)
        t[i], t[i + 1] = t[i + 1], t[i]  # the second service's tool before its authorize
        return ans

    with wrapped_handler("s11.fusion", misorder):
        cfg = config(root)
        cfg["llm"]["cache_mode"] = "off"
        g = run_s11(root, cfg)
    assert g["status"] == "ok" and len(g["rounds"]) == 2
    assert any("comes before" in e for e in g["rounds"][0]["errors"]) and g["rounds"][1]["errors"] == []
    ms = members(root)
    assert all(s11.check_trajectory(t, ms, 6) == [] for t in g["trajectories"])


def test_fusion_is_deterministic(root):
    g1 = run_s11(root, out="cross1")
    cfg = config(root)
    cfg["llm"]["cache_mode"] = "off"
    g2 = run_s11(root, cfg, out="cross2")
    assert g1 == g2
    assert (root / f"cross1/{PAIR}/tool_graph.json").read_bytes() == (
        root / f"cross2/{PAIR}/tool_graph.json"
    ).read_bytes()


def test_fusion_quarantines_a_failed_member_without_llm(root):
    g = io.read_json(root / f"tool_graphs/{B}.json")
    g.update(status="failed", reason="s08: cycle", trajectories=[])
    io.write_json(root / f"tool_graphs/{B}.json", g)
    out = run_s11(root, llm=NoLLM())
    assert out["status"] == "failed" and "s08: cycle" in out["reason"] and out["trajectories"] == []
    io.validate(out, "fused_trajectories")


# ------------------------------------------------------------------ s13
def test_merged_policy_keeps_members_whole_and_namespaced(root):
    text, rep = run_s13(root)
    assert rep["status"] == "ok" and rep["rounds_used"] == 1
    io.validate(rep, "merged_policy_report")
    p = parse_policy(text)
    assert p.problems == []
    bps = {d: io.read_json(root / f"blueprints/{d}.json") for d in (A, B)}
    want = [f"{d}__{t['name']}" for d in (A, B) for t in bps[d]["tools"]]
    assert sorted(p.order) == sorted(want) and len(p.order) == len(set(p.order))  # exactly one section each
    assert rep["sections"] == p.order
    # every member section kept whole: the namespaced original section, word for word
    orig = parse_policy(io.read_text(root / f"policies/{A}.md")).sections["book_appointment"]
    mapping = {t["name"]: f"{A}__{t['name']}" for t in bps[A]["tools"]}
    mapping["DentalAppointment"] = f"{A}_DentalAppointment"
    assert p.sections[f"{A}__book_appointment"] == s13.namespace_text(orig, mapping)
    assert (
        orig.replace("`authorize_patient`", f"`{A}__authorize_patient`")
        .replace("### book_appointment", f"### {A}__book_appointment")
        .replace("DentalAppointment", f"{A}_DentalAppointment")
        == p.sections[f"{A}__book_appointment"]
    )
    assert f"`{A}_DentalAppointment.patient_id`" in text and "`DentalAppointment" not in text
    assert "`authorize_patient`" not in text and "<!-- TOOL: authorize_patient -->" not in text
    # bridge rules: the derived ones (no links: no ordering), each marked, inside the global rules,
    # so every task's policy carries them
    assert [r["id"] for r in rep["bridge_rules"]] == [
        "bridge.identity",
        f"bridge.authorization.{A}",
        f"bridge.authorization.{B}",
        f"bridge.separation.{A}",
        f"bridge.separation.{B}",
    ]
    assert {r["kind"] for r in rep["bridge_rules"]} == {"identity", "authorization", "separation"}
    for r in rep["bridge_rules"]:
        assert f"<!-- RULE: {r['id']} -->" in text and "<!--" not in r["text"]
    assert s13.BRIDGE_START in p.global_rules and s13.BRIDGE_END in p.global_rules
    sub = policy_for_tools(text, [f"{B}__submit_prescription_fill"])
    assert "## Bridge Rules" in sub and f"<!-- TOOL: {B}__submit_prescription_fill -->" in sub
    assert "One patient per conversation" in sub  # the rules reach the assistant (markers stripped, like s07's)
    ident = " ".join(r["text"] for r in rep["bridge_rules"] if r["kind"] == "identity")
    assert f"`{A}__authorize_patient`" in ident and f"`{B}__authorize_patient`" in ident


def test_bridge_rule_checks(root):
    bps = [artifacts.load_blueprint(p) for p in member_paths(root, "blueprints")]
    pol = {d: io.read_text(root / f"policies/{d}.md") for d in (A, B)}
    v = s13.PairVocabulary.build(bps, pol)
    derived = derive_bridge_rules(bps)
    ids = [r.id for r in derived]

    def section(*rules: str) -> str:
        return "\n".join([s13.BRIDGE_START, "## Bridge Rules", *[f"- {r}" for r in rules], s13.BRIDGE_END])

    def stated(r) -> str:
        return f"**{r.kind.capitalize()}:** {r.statement} <!-- RULE: {r.id} -->"

    good = [stated(r) for r in derived]
    assert s13.check_bridge(section(*good), v, derived) == []
    # a text-only rule (no marker) is refused, so is a marker the server does not enforce
    errs = s13.check_bridge(section(*good, "**Ordering:** finish one service before the other."), v, derived)
    assert any("text-only bridge rule" in e for e in errs)
    errs = s13.check_bridge(section(*good, "**Identity:** be kind. <!-- RULE: bridge.kindness -->"), v, derived)
    assert any("does not enforce" in e for e in errs)
    # every derived rule stated exactly once, with its kind and its names
    errs = s13.check_bridge(section(*good[1:]), v, derived)
    assert any("bridge.identity is missing" in e for e in errs)
    errs = s13.check_bridge(section(*good, good[0]), v, derived)
    assert any("stated 2 times" in e for e in errs)
    errs = s13.check_bridge(section(good[0].replace("**Identity:**", "**Separation:**"), *good[1:]), v, derived)
    assert any("label it **Identity:**" in e for e in errs)
    weak = "**Identity:** The same `patient_id` everywhere. <!-- RULE: bridge.identity -->"
    errs = s13.check_bridge(section(weak, *good[1:]), v, derived)
    assert any("bridge.identity must name" in e and f"`{A}__authorize_patient`" in e for e in errs)
    # names are checked against the pair
    bad = good[1].replace(" <!--", f" Call `{A}__fly_plane` first. <!--")
    errs = s13.check_bridge(section(good[0], bad, *good[2:]), v, derived)
    assert any("unknown tool `DentalCareDesk__fly_plane`" in e for e in errs)
    bare = good[1].replace(" <!--", " Call `authorize_patient` first. <!--")
    errs = s13.check_bridge(section(good[0], bare, *good[2:]), v, derived)
    assert any(
        "bare tool name" in e and f"`{A}__authorize_patient`" in e and f"`{B}__authorize_patient`" in e for e in errs
    )
    table = good[1].replace(" <!--", " See `DentalAppointment.status`. <!--")
    errs = s13.check_bridge(section(good[0], table, *good[2:]), v, derived)
    assert any(f"`{A}_DentalAppointment.status`" in e for e in errs)
    assert any("kind label" in e for e in s13.check_bridge(section(*good, "Just be nice."), v, derived))
    assert any("exactly once" in e for e in s13.check_bridge("## Bridge Rules\n- **Identity:** x", v, derived))
    assert ids[0] == "bridge.identity"


def test_linked_storylines_give_ordering_rules(root):
    """A link from a Dental result to a Pharmacy argument orders the two steps, unless some
    fused trajectory calls the later step without the earlier one."""
    bps = [artifacts.load_blueprint(p) for p in member_paths(root, "blueprints")]
    t1 = [
        f"{A}__authorize_patient",
        f"{A}__book_appointment",
        f"{B}__authorize_patient",
        f"{B}__submit_prescription_fill",
    ]
    # the links' shape of s11 (issue 11 part 1): the ends name their namespaced tools
    link = {
        "from": {"call": t1[1], "field": "scheduled_at"},
        "to": {"call": t1[3], "param": "pickup_date"},
        "relation": "after",
    }
    graph = {
        "trajectories": [t1],
        "storylines": [{"trajectory": t1, "storyline": "s", "segments": {}, "links": [link]}],
    }
    rules = {r.id: r for r in derive_bridge_rules(bps, graph)}
    rid = f"bridge.ordering.{B}__submit_prescription_fill.{A}__book_appointment"
    assert rid in rules and rules[rid].tool == t1[3] and rules[rid].after == t1[1]
    t2 = [
        f"{B}__authorize_patient",
        f"{B}__submit_prescription_fill",
        f"{A}__authorize_patient",
        f"{A}__book_appointment",
    ]
    graph["trajectories"].append(t2)
    assert not any(r.kind == "ordering" for r in derive_bridge_rules(bps, graph))
    assert not any(r.kind == "ordering" for r in derive_bridge_rules(bps, None))


def test_bridge_rules_repair_drops_an_unknown_tool(root):
    def add_unknown(text: str) -> str:
        return text.replace(
            s13.BRIDGE_END, f"- **Ordering:** call `{A}__teleport_patient` before anything else.\n" + s13.BRIDGE_END
        )

    with wrapped_handler("s13.bridge_rules", add_unknown):
        cfg = config(root)
        cfg["llm"]["cache_mode"] = "off"
        text, rep = run_s13(root, cfg)
    assert rep["status"] == "ok" and rep["rounds_used"] == 2
    assert any("teleport_patient" in e for e in rep["rounds"][0]["errors"]) and rep["rounds"][1]["errors"] == []
    assert "teleport_patient" not in text


def test_bridge_rules_that_never_pass_quarantine_the_pair(root):
    offline.load_handlers()
    real = offline.get_handler("s13.bridge_rules")
    unregister("s13.bridge_rules")
    handler("s13.bridge_rules")(lambda req: "no markers at all")
    try:
        cfg = config(root)
        cfg["llm"]["cache_mode"] = "off"
        text, rep = run_s13(root, cfg)
    finally:
        unregister("s13.bridge_rules")
        handler("s13.bridge_rules")(real)
    assert rep["status"] == "failed" and text == "" and "Bridge Rules failed" in rep["reason"]
    assert rep["rounds_used"] == cfg["policy"]["max_repair_rounds"] + 1
    io.validate(rep, "merged_policy_report")


def test_merge_is_deterministic_and_quarantines_without_llm(root):
    t1, r1 = run_s13(root, out="c1")
    cfg = config(root)
    cfg["llm"]["cache_mode"] = "off"
    t2, r2 = run_s13(root, cfg, out="c2")
    assert t1 == t2 and r1 == r2
    rep = io.read_json(root / f"policies/{A}.json")
    rep.update(status="failed", reason="s07: missing sections")
    io.write_json(root / f"policies/{A}.json", rep)
    text, r = run_s13(root, llm=NoLLM(), out="c3")
    assert r["status"] == "failed" and "s07: missing sections" in r["reason"] and text == ""


def test_namespace_text_leaves_prose_alone():
    m = {"book_appointment": "X__book_appointment", "refund": "X__refund", "Booking": "X_Booking"}
    src = (
        "Booking is easy. Use `book_appointment` or book_appointment; `refund` differs from a refund.\n"
        "`Booking.status` and Booking.status; <!-- TOOL: refund -->\n### refund\n"
    )
    out = s13.namespace_text(src, m)
    assert out.startswith(
        "Booking is easy. Use `X__book_appointment` or X__book_appointment; `X__refund` differs from a refund."
    )
    assert "`X_Booking.status` and X_Booking.status; <!-- TOOL: X__refund -->\n### X__refund" in out
    assert s13.namespace_text(out, m) == out  # idempotent: namespaced names are not renamed again
