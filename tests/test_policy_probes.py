"""Probes of every generated server that keep the policy's promises, built without the
contract-test generator (s09's oracle) so that a shared mistake cannot hide a broken rule.

For each server that passed s09 (the shared default run, or ``AGENTSKILLER_OUTPUTS``), in
process through the runtime, as a careful user would try it:

* a booking in the past (a date or date-time the data format says lies ahead) is refused,
  while the same call a week ahead succeeds;
* an empty required text is refused;
* a date-time without its time (``2025-07-01``) is refused;
* a list filter naming a record that does not exist is refused (not answered with ``[]``);
* a check-in succeeds for a record of the user whose time lies at most 24 hours ahead, and
  is refused for one further ahead;
* another person's record is refused, and the refusal reads exactly like the one for a
  record that does not exist, apart from the ID.

The valid arguments come straight from the data: an existing row of the tool's table
(owned by the user who logs in) lends its values.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from agentskiller import artifacts, io
from agentskiller.models.blueprint import Blueprint, Tool
from agentskiller.runtime.environment import load_environment

UNKNOWN = "PROBE-NO-SUCH-0000"


class Probe:
    """One server: its blueprint, data and a fresh session per call sequence."""

    def __init__(self, outputs: Path, server: Path) -> None:
        self.domain = server.name
        self.bp: Blueprint = artifacts.require_blueprint(outputs / "blueprints" / f"{self.domain}.json")
        self.env = load_environment(server)
        self.now = dt.datetime.fromisoformat(self.env.manifest.simulation_time.replace("Z", "+00:00"))
        self.rows = {name: io.read_json(path)["records"] for name, path in self.env.table_paths.items()}
        self.keys = {name: io.read_json(path)["primary_key"] for name, path in self.env.table_paths.items()}
        self.core = self.bp.core_entity
        self.auth = self.bp.authorize_tool()

    def owner_col(self, table: str) -> str | None:
        rel = self.bp.relationship(table)
        return next((c.name for c in rel.columns if c.references == self.core), None) if rel else None

    def column(self, table: str, name: str | None):
        rel = self.bp.relationship(table)
        return rel.column(name or "") if rel else None

    def calls(self, user: Any, *calls: tuple[str, dict]) -> list:
        session = self.env.new_session()
        out = [session.call(self.auth.name, {self.auth.parameters[0].name: user})]
        assert out[0].ok, out[0].error
        return out + [session.call(name, args) for name, args in calls]

    def moment(self, kind: str, days: int) -> str:
        t = (self.now + dt.timedelta(days=days)).replace(hour=10, minute=0, second=0)
        return t.date().isoformat() if kind == "date" else t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def owned_row(self, tool: Tool) -> tuple[Any, dict] | None:
        """(owner, a row of the tool's table that meets its preconditions)."""
        owner = self.owner_col(tool.table)
        for row in self.rows.get(tool.table, []):
            if owner and all(row.get(c.column) in c.values for c in tool.preconditions):
                return row[owner], row
        return None

    def args_from(self, tool: Tool, row: dict) -> dict:
        """The tool's arguments read off a data row (its key for an update, its values)."""
        args = {}
        for p in tool.parameters:
            if p.column in row and row[p.column] is not None and p.type != "array":
                if tool.kind == "create" and p.column == self.keys.get(tool.table):
                    continue
                args[p.name] = row[p.column]
        return args


@pytest.fixture(scope="module")
def probes(outputs_dir, servers) -> list[Probe]:
    return [Probe(outputs_dir, s) for s in servers]


def _future_params(pr: Probe, tool: Tool) -> list:
    return [
        p
        for p in tool.parameters
        if p.type in ("date", "datetime")
        and (col := pr.column(tool.table, p.column)) is not None
        and (col.format or "").startswith("future_")
    ]


def test_a_booking_in_the_past_is_refused(probes):
    tried = 0
    for pr in probes:
        for tool in pr.bp.tools:
            if tool.kind not in ("create", "update") or not _future_params(pr, tool):
                continue
            found = pr.owned_row(tool)
            if found is None:
                continue
            user, row = found
            args = pr.args_from(tool, row)
            for p in _future_params(pr, tool):
                ahead = {**args, p.name: pr.moment(p.type, 7)}
                for q in _future_params(pr, tool):
                    ahead.setdefault(q.name, pr.moment(q.type, 7))
                    ahead[q.name] = pr.moment(q.type, 7)
                past = {**ahead, p.name: pr.moment(p.type, -1)}
                good, bad = pr.calls(user, (tool.name, ahead))[1], pr.calls(user, (tool.name, past))[1]
                assert good.ok, (pr.domain, tool.name, ahead, good.error)
                assert bad.error_type == "tool_error", (pr.domain, tool.name, past, bad.to_json())
                tried += 1
    assert tried >= 5, tried


def test_an_empty_required_text_is_refused(probes):
    tried = 0
    for pr in probes:
        for tool in pr.bp.tools:
            if tool.kind not in ("create", "update"):
                continue
            texts = [
                p
                for p in tool.parameters
                if p.required
                and p.type == "string"
                and not p.enum
                and (col := pr.column(tool.table, p.column)) is not None
                and not col.enum
                and not col.references
                and p.column != pr.keys.get(tool.table)
            ]
            found = pr.owned_row(tool)
            if not texts or found is None:
                continue
            user, row = found
            args = pr.args_from(tool, row)
            for q in _future_params(pr, tool):
                args[q.name] = pr.moment(q.type, 7)
            for p in texts:
                for empty in ("", "   "):
                    res = pr.calls(user, (tool.name, {**args, p.name: empty}))[1]
                    assert res.error_type == "tool_error", (pr.domain, tool.name, p.name, repr(empty), res.to_json())
                    tried += 1
    assert tried >= 2, tried


def test_a_date_time_without_its_time_is_refused(probes):
    tried = 0
    for pr in probes:
        for tool in pr.bp.tools:
            stamps = [p for p in tool.parameters if p.type == "datetime"]
            found = pr.owned_row(tool) if tool.kind in ("create", "update") else None
            if not stamps or found is None:
                continue
            user, row = found
            args = pr.args_from(tool, row)
            for q in _future_params(pr, tool):
                args[q.name] = pr.moment(q.type, 7)
            for p in stamps:
                day = pr.moment("date", 7)
                res = pr.calls(user, (tool.name, {**args, p.name: day}))[1]
                assert res.error_type == "tool_error", (pr.domain, tool.name, p.name, res.to_json())
                tried += 1
    assert tried >= 3, tried


def test_a_filter_naming_a_missing_record_is_refused(probes):
    tried = 0
    for pr in probes:
        user = pr.rows[pr.core][0][pr.keys[pr.core]]
        for tool in pr.bp.tools:
            if tool.kind not in ("search", "compute"):
                continue
            rel = pr.bp.relationship(tool.table)
            refs = rel.foreign_keys() if rel else {}
            for p in tool.parameters:
                if p.required or refs.get(p.column or "") in (None, pr.core):
                    continue
                res = pr.calls(user, (tool.name, {p.name: UNKNOWN}))[1]
                assert res.error_type == "tool_error", (pr.domain, tool.name, p.name, res.to_json())
                tried += 1
    assert tried >= 3, tried


def test_another_persons_record_is_refused_like_a_missing_one(probes):
    tried = 0
    for pr in probes:
        for tool in pr.bp.tools:
            owner = pr.owner_col(tool.table)
            if tool.kind != "read" or not owner or not tool.requires_auth:
                continue
            rows = pr.rows.get(tool.table, [])
            users = [r[pr.keys[pr.core]] for r in pr.rows[pr.core]]
            row = rows[0] if rows else None
            stranger = next((u for u in users if row and u != row[owner]), None)
            if row is None or stranger is None:
                continue
            key = tool.parameters[0].name
            rid = row[pr.keys[tool.table]]
            _, theirs, missing = pr.calls(stranger, (tool.name, {key: rid}), (tool.name, {key: UNKNOWN}))
            assert theirs.error_type == missing.error_type == "tool_error", (pr.domain, tool.name)
            assert theirs.error.replace(str(rid), "<ID>") == missing.error.replace(UNKNOWN, "<ID>"), (
                pr.domain,
                theirs.error,
                missing.error,
            )
            tried += 1
    assert tried >= 8, tried


def test_a_check_in_opens_24_hours_before_the_time(probes):
    """A check-in tool (``check`` ``in`` in its name) acts on a record of the user in the status
    it needs only while the record's future date-time lies at most 24 hours ahead."""
    tried = 0
    for pr in probes:
        for tool in pr.bp.tools:
            words = tool.name.split("_")
            rel = pr.bp.relationship(tool.table)
            when = next((c for c in rel.columns if c.format == "future_datetime"), None) if rel else None
            owner = pr.owner_col(tool.table)
            if tool.kind != "update" or not ("check" in words and "in" in words) or when is None or not owner:
                continue
            soon, far = [], []
            for row in pr.rows.get(tool.table, []):
                if not all(row.get(c.column) in c.values for c in tool.preconditions):
                    continue
                ahead = dt.datetime.fromisoformat(str(row[when.name]).replace("Z", "+00:00")) - pr.now
                if dt.timedelta(0) <= ahead <= dt.timedelta(hours=24):
                    soon.append(row)
                elif ahead > dt.timedelta(hours=25):
                    far.append(row)
            assert soon and far, (pr.domain, tool.name, len(soon), len(far))
            ok = pr.calls(soon[0][owner], (tool.name, pr.args_from(tool, soon[0])))[1]
            early = pr.calls(far[0][owner], (tool.name, pr.args_from(tool, far[0])))[1]
            assert ok.ok, (pr.domain, tool.name, soon[0], ok.error)
            assert early.error_type == "tool_error" and "24 hours" in str(early.error), (pr.domain, early.to_json())
            tried += 1
    assert tried >= 1, tried
