"""s08: graph checks (cycle, second root, unreachable), enumeration, ranking, the step."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.llm import offline
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import Blueprint
from agentskiller.steps.domains import s08_tool_graph as s08

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def blueprint() -> Blueprint:
    data = io.read_json(FIX / "blueprint_dental.json")
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


def offline_answer() -> s08.ToolGraphAnswer:
    bp = blueprint()
    fn = offline.get_handler("s08.tool_graph")
    ans = fn(
        OfflineRequest(task="s08.tool_graph", messages=[], context=s08.graph_context(bp, ""), rng=random.Random(0))
    )
    return s08.ToolGraphAnswer.model_validate(ans)


def with_edges(ans: s08.ToolGraphAnswer, add=(), drop=()) -> s08.ToolGraphAnswer:
    edges = [e for e in ans.edges if (e.source, e.target) not in set(drop)]
    edges += [s08.GraphEdge(source=s, target=t, type="storyline flow") for s, t in add]
    return s08.ToolGraphAnswer(edges=edges, preconditions=ans.preconditions)


def test_offline_graph_is_valid():
    ans = offline_answer()
    assert s08.check_graph(ans, blueprint()) == []
    pairs = {(e.source, e.target) for e in ans.edges}
    assert ("list_my_appointments", "cancel_appointment") in pairs
    assert ("search_dentists", "book_appointment") in pairs
    assert ("book_appointment", "get_appointment") in pairs
    assert ans.preconditions["cancel_appointment"] == ["authorize_patient"]


def test_cycle_is_reported():
    ans = with_edges(offline_answer(), add=[("cancel_appointment", "list_my_appointments")])
    errs = s08.check_graph(ans, blueprint())
    assert any("cycle" in e and "cancel_appointment" in e for e in errs)


def test_second_root_and_unreachable_are_reported():
    ans = with_edges(offline_answer(), drop=[("authorize_patient", "total_outstanding")])
    errs = s08.check_graph(ans, blueprint())
    assert any("total_outstanding has no incoming edge" in e for e in errs)
    ans = with_edges(offline_answer(), add=[("get_dentist", "authorize_patient")])
    assert any("must be the root" in e for e in s08.check_graph(ans, blueprint()))
    # an island: reachable only from a node that is itself unreachable
    base = offline_answer()
    edges = [e for e in base.edges if e.target not in ("list_invoices", "pay_invoice")]
    edges += [
        s08.GraphEdge(source="pay_invoice", target="list_invoices", type="storyline flow"),
        s08.GraphEdge(source="list_invoices", target="pay_invoice", type="storyline flow"),
    ]
    errs = s08.check_graph(s08.ToolGraphAnswer(edges=edges, preconditions={}), blueprint())
    assert any("not reachable" in e or "cycle" in e for e in errs)


def test_unknown_tool_and_bad_precondition():
    ans = with_edges(offline_answer(), add=[("authorize_patient", "teleport")])
    assert any("teleport is not a tool" in e for e in s08.check_graph(ans, blueprint()))
    ans = offline_answer()
    ans.preconditions["get_dentist"] = ["authorize_patient", "pay_invoice"]
    assert any("pay_invoice of get_dentist is not an ancestor" in e for e in s08.check_graph(ans, blueprint()))


def test_enumeration_preconditions_and_cap_are_deterministic():
    bp = blueprint()
    ans = offline_answer()
    art = s08.assemble(bp, ans, 2, 4, 12)
    assert art["kept"] == 12 == len(art["trajectories"]) and art["enumerated"] >= art["valid"] >= 12
    assert all(t[0] == "authorize_patient" and 2 <= len(t) <= 4 for t in art["trajectories"])
    assert len({tuple(t) for t in art["trajectories"]}) == 12
    kinds = {t.name: t.kind for t in bp.tools}
    assert any(kinds[x] in ("create", "update", "delete") for x in art["trajectories"][0])
    # every trajectory follows edges
    pairs = {(e["source"], e["target"]) for e in art["edges"]}
    assert all((a, b) in pairs for t in art["trajectories"] for a, b in zip(t, t[1:]))
    # same input -> same output; shuffled edge order -> same output
    shuffled = s08.ToolGraphAnswer(edges=list(reversed(ans.edges)), preconditions=ans.preconditions)
    assert s08.assemble(bp, shuffled, 2, 4, 12) == art
    # preconditions filter: demand that cancel comes after a listing
    pre = dict(ans.preconditions, cancel_appointment=["authorize_patient", "list_my_appointments"])
    art2 = s08.assemble(bp, s08.ToolGraphAnswer(edges=ans.edges, preconditions=pre), 2, 4, 500)
    for t in art2["trajectories"]:
        if "cancel_appointment" in t:
            assert "list_my_appointments" in t[: t.index("cancel_appointment")]
    assert art2["valid"] < art["valid"]
    # the greedy pick covers the tools broadly
    covered = {x for t in art["trajectories"] for x in t}
    assert len(covered) >= 10


def test_enumeration_bound():
    import networkx as nx

    g = nx.complete_graph(8, nx.DiGraph())
    g = nx.DiGraph([(a, b) for a, b in g.edges if a < b])
    paths, truncated = s08.enumerate_paths(nx.relabel_nodes(g, str), "0", 1, 8, limit=20)
    assert len(paths) == 20 and truncated


def config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["llm"]["cache_mode"] = "off"
    return cfg


def step_ctx(tmp: Path, report: dict) -> StepContext:
    io.write_json(tmp / "policy.json", report)
    (tmp / "policy.md").write_text("policy")
    return StepContext.from_paths(
        "s08",
        config(),
        inputs={
            "blueprint": FIX / "blueprint_dental.json",
            "policy": tmp / "policy.md",
            "policy_report": tmp / "policy.json",
        },
        outputs={"graph": tmp / "tool_graphs/DentalCare.json"},
        wildcards={"domain": "DentalCare"},
    )


def test_step_writes_graph_and_repairs(tmp_path):
    offline.load_handlers()
    real = offline.get_handler("s08.tool_graph")

    def cyclic_first(req):
        ans = real(req)
        if req.round == 0:
            ans["edges"].append(
                {"source": "cancel_appointment", "target": "list_my_appointments", "type": "storyline flow"}
            )
        return ans

    offline.unregister("s08.tool_graph")
    offline.handler("s08.tool_graph")(cyclic_first)
    try:
        s08.run(step_ctx(tmp_path, {"status": "ok"}))
    finally:
        offline.unregister("s08.tool_graph")
        offline.handler("s08.tool_graph")(real)
    g = io.read_json(tmp_path / "tool_graphs/DentalCare.json")
    assert g["status"] == "ok" and len(g["rounds"]) == 2 and any("cycle" in e for e in g["rounds"][0]["errors"])
    assert g["kept"] == config()["tool_graph"]["max_trajectories"]
    again = tmp_path / "again"
    again.mkdir()
    s08.run(step_ctx(again, {"status": "ok"}))
    g2 = io.read_json(again / "tool_graphs/DentalCare.json")
    assert g2["trajectories"] == g["trajectories"] and g2["edges"] == g["edges"]


def test_failed_policy_quarantines_graph(tmp_path):
    s08.run(step_ctx(tmp_path, {"status": "failed", "reason": "s07: bad policy"}))
    g = io.read_json(tmp_path / "tool_graphs/DentalCare.json")
    assert g["status"] == "failed" and g["reason"] == "s07: bad policy" and g["trajectories"] == []


def test_kept_trajectories_mix_lengths_round_robin():
    """The cap keeps every length min..max (longest first, in turn), so the prefix s14
    takes (tasks.max_templates) is a mix too; still deterministic and write-first."""
    bp = blueprint()
    art = s08.assemble(bp, offline_answer(), 2, 4, 12)
    lengths = [len(t) for t in art["trajectories"]]
    assert lengths[:6] == [4, 3, 2, 4, 3, 2]
    counts = {n: lengths.count(n) for n in (2, 3, 4)}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    kinds = {t.name: t.kind for t in bp.tools}
    # every length's first pick writes when a writing path of that length exists
    for n in (2, 3, 4):
        first = next(t for t in art["trajectories"] if len(t) == n)
        assert any(kinds[x] in ("create", "update", "delete") for x in first), first
    assert s08.assemble(bp, offline_answer(), 2, 4, 12) == art
    # a length with too few paths drops out of the rotation; the others fill the cap
    paths = [("a", "w"), ("a", "b", "w"), ("a", "b", "c", "w"), ("a", "c", "b", "w"), ("a", "b", "c"), ("a", "c", "w")]
    kept = s08.rank_trajectories(paths, {"w": "create", "b": "read", "c": "search", "a": "authorize"}, 5)
    assert [len(t) for t in kept] == [4, 3, 2, 4, 3]


def test_read_only_share_asks_in_turn_for_an_aggregate_the_profile_a_record_and_a_list():
    kinds = {"a": "authorize", "count": "compute", "prof": "read", "get": "read", "ls": "search", "w": "create"}
    tables = {"a": "User", "count": "Booking", "prof": "User", "get": "Booking", "ls": "Booking", "w": "Booking"}
    paths = [("a", "w"), ("a", "ls", "w"), ("a", "count"), ("a", "prof"), ("a", "ls", "get"), ("a", "ls"), ("a", "get")]
    kept = s08.rank_trajectories(paths, kinds, 6, read_only_share=0.67, tables=tables, core="User")
    reads = [p for p in kept if not any(kinds[t] == "create" for t in p)]
    assert [p[-1] for p in reads] == ["count", "prof", "get", "ls"]
    # spread through the list: a prefix of it (tasks.max_templates) keeps both kinds
    assert len(kept) == 6 and [kept.index(r) for r in reads] == [0, 1, 3, 4]
