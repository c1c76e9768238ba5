"""s06 data checks: unique keys, at_most bounds, business hours, status vs time (data_rules)."""

from __future__ import annotations

from pathlib import Path

import yaml

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import Blueprint, Relationship
from agentskiller.steps.domains import data_checks as dc
from agentskiller.steps.domains import data_rules
from agentskiller.steps.domains import s06_database as s06

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-02T09:00:00Z"  # a Monday

RESERVATION = Relationship.model_validate(
    {
        "name": "HotelReservation",
        "description": "A room reservation",
        "primary_key": "hotel_reservation_id",
        "columns": [
            {"name": "hotel_reservation_id", "type": "string", "description": "id"},
            {"name": "traveler_id", "type": "string", "description": "who", "references": "Traveler"},
            {"name": "room_type_id", "type": "string", "description": "room", "references": "RoomType"},
            {"name": "check_in_date", "type": "date", "format": "future_date", "description": "arrival"},
            {"name": "guests", "type": "integer", "minimum": 1, "maximum": 6, "description": "guests"},
            {"name": "at_most_none", "type": "integer", "description": "unbounded"},
            {"name": "status", "type": "string", "enum": ["reserved", "checked_in", "cancelled"], "description": "s"},
        ],
    }
)
LIFECYCLE = {"column": "status", "initial": ["reserved"], "active": ["reserved"]}


def reservation(i: int, **kw) -> dict:
    rec = {
        "hotel_reservation_id": f"HOR-{i}",
        "traveler_id": "TRA-1",
        "room_type_id": "ROT-1",
        "check_in_date": "2025-07-01",
        "guests": 2,
        "at_most_none": 3,
        "status": "reserved",
    }
    return rec | kw


def bounded_spec() -> dc.TableSpec:
    rel = RESERVATION.model_copy(deep=True)
    rel.column("guests").at_most = "RoomType.max_occupancy"
    return dc.spec_for_relationship(rel, LIFECYCLE)


ROOMS = {"RoomType": {"ROT-1": {"room_type_id": "ROT-1", "max_occupancy": 2}, "ROT-2": {"max_occupancy": None}}}


# ------------------------------------------------------------------ unique keys
def test_duplicate_primary_keys_fail_naming_the_table_and_the_key():
    spec = dc.spec_for_relationship(RESERVATION, LIFECYCLE)
    recs = [reservation(1), reservation(2), reservation(1), reservation(3), reservation(2)]
    errs = dc.check_records(recs, spec, 5, None, NOW)
    dup = [e for e in errs if "not unique" in e]
    assert dup == [
        "table HotelReservation: primary key 'hotel_reservation_id' is not unique: 2 duplicated value(s), "
        "e.g. 'HOR-1' (records 0, 2), 'HOR-2' (records 1, 4)"
    ]
    assert dc.check_records([reservation(1), reservation(2)], spec, 2, None, NOW) == []


def test_domain_job_rejects_an_entity_table_with_duplicate_keys(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["llm"]["cache_mode"] = "off"
    meta = {"step": "s06", "schema_version": 1, "provider": "offline", "seed": 1, "inputs": {}}
    rec = {"patient_id": "PAT-1", "full_name": "Ann Lee"}
    table = tmp_path / "Patient.json"
    io.write_json(table, {"table": "Patient", "primary_key": "patient_id", "records": [rec, rec], "meta": meta})
    ctx = StepContext.from_paths(
        "s06",
        cfg,
        inputs={
            "blueprint": FIX / "blueprint_dental.json",
            "entities": FIX / "entities_small.json",
            "entity_tables": [table],
        },
        outputs={"db": tmp_path / "database/DentalCare"},
        wildcards={"domain": "DentalCare"},
    )
    s06.run_domain(ctx)
    summary = io.read_json(tmp_path / "database/DentalCare/summary.json")
    assert summary["status"] == "failed"
    assert "entity table Patient" in summary["reason"] and "'PAT-1' (records 0, 1)" in summary["reason"]


# ------------------------------------------------------------------ at_most
def test_at_most_bounds_are_checked_on_every_row():
    spec = bounded_spec()
    good = [reservation(1, guests=2), reservation(2, guests=5, room_type_id="ROT-2")]  # no bound: no check
    assert dc.check_records(good, spec, 2, None, NOW, ROOMS) == []
    bad = [reservation(i, guests=g) for i, g in enumerate([1, 3, 2, 6])]
    errs = dc.check_records(bad, spec, 4, None, NOW, ROOMS)
    assert len(errs) == 1 and errs[0].startswith(
        "column 'guests': 2 record(s) above RoomType.max_occupancy of the referenced RoomType"
    )
    assert "record 1: 3 > 2 of room_type_id='ROT-1'" in errs[0] and "record 3: 6 > 2" in errs[0]
    # without the referenced records the bound cannot be checked (and is not guessed)
    assert dc.check_records(bad, spec, 4, None, NOW) == []


# --------------------------------------------------------- schedule and lifecycle
def appointment_spec() -> dc.TableSpec:
    bp = Blueprint.model_validate(
        {k: v for k, v in io.read_json(FIX / "blueprint_dental.json").items() if k not in ("status", "meta")}
    )
    rel = bp.relationship("Appointment")
    return dc.spec_for_relationship(rel, data_rules.lifecycle_of(bp.tools, rel.name))


def appointment(when: str, status: str, created: str = "2025-01-01T08:00:00Z") -> dict:
    return {
        "appointment_id": f"APP-{when}-{status}",
        "patient_id": "PAT-1",
        "dentist_id": "DEN-1",
        "dental_procedure_id": "DEP-1",
        "scheduled_at": when,
        "created_at": created,
        "status": status,
        "notes": None,
    }


def test_lifecycle_comes_from_the_tools():
    spec = appointment_spec()
    assert spec.lifecycle == {"column": "status", "initial": ["scheduled"], "active": ["scheduled"]}
    past, future = data_rules.status_windows(spec.column("status").enum, spec.lifecycle)
    assert past == ["completed", "cancelled", "no_show"] and future == ["scheduled"]
    # the initial status always fits a time to come, even when its word could mean "over"
    loan = {"column": "status", "initial": ["checked_out"], "active": ["checked_out", "overdue"]}
    assert data_rules.status_windows(["checked_out", "returned", "overdue", "lost"], loan) == (
        ["returned", "overdue", "lost"],
        ["checked_out"],
    )


def test_appointments_keep_business_hours_monday_to_saturday():
    spec = appointment_spec()
    ok = [
        appointment("2025-06-07T19:45:00Z", "scheduled"),  # Saturday evening
        appointment("2025-06-03T07:00:00Z", "scheduled"),
        appointment("2025-05-30T12:30:00Z", "completed"),
    ]
    assert dc.check_records(ok, spec, 3, None, NOW) == []
    bad = [
        appointment("2025-06-08T10:00:00Z", "scheduled"),  # Sunday
        appointment("2025-06-03T20:00:00Z", "scheduled"),
        appointment("2025-05-27T06:45:00Z", "completed"),
    ]
    errs = dc.check_records(bad, spec, 3, None, NOW)
    assert errs == [
        "column 'scheduled_at': 3 record(s) outside business hours (Monday-Saturday, 07:00-19:59 UTC) "
        "(e.g. record 0: '2025-06-08T10:00:00Z' (Sunday 10:00); record 1: '2025-06-03T20:00:00Z' (Tuesday 20:00); "
        "record 2: '2025-05-27T06:45:00Z' (Tuesday 06:45))"
    ]


def test_status_agrees_with_a_past_or_future_scheduled_time():
    spec = appointment_spec()
    recs = [
        appointment("2025-05-28T10:00:00Z", "scheduled"),  # past, still waiting: wrong
        appointment("2025-06-10T10:00:00Z", "cancelled"),  # future, already ended: wrong
        appointment("2025-06-11T10:00:00Z", "completed"),  # future, already done: wrong
        appointment("2025-05-28T11:00:00Z", "no_show"),
        appointment("2025-06-12T10:00:00Z", "scheduled"),
    ]
    errs = dc.check_records(recs, spec, 5, None, NOW)
    assert any("1 record(s) with status 'scheduled' but scheduled_at in the past" in e for e in errs), errs
    assert any("with status 'cancelled' but scheduled_at in the future" in e and "['scheduled']" in e for e in errs)
    assert any("with status 'completed' but scheduled_at in the future" in e for e in errs)
    assert len(errs) == 3
    late = [appointment("2025-06-12T10:00:00Z", "scheduled", created="2025-06-13T10:00:00Z")]
    errs = dc.check_records(late, spec, 1, None, NOW)
    assert any("created_at after the simulation time" in e for e in errs)
    assert any("created_at later than scheduled_at" in e for e in errs)


def test_dates_need_no_hour_and_past_formats_stay_in_the_past():
    spec = dc.spec_for_relationship(RESERVATION, LIFECYCLE)
    assert dc.check_records([reservation(1, check_in_date="2025-06-08")], spec, 1, None, NOW) == []  # a Sunday
    errs = dc.check_records([reservation(1, check_in_date="2025-05-08")], spec, 1, None, NOW)
    assert any("status 'reserved' but check_in_date in the past" in e for e in errs)
    claim = Relationship.model_validate(
        {
            "name": "Claim",
            "description": "c",
            "primary_key": "claim_id",
            "columns": [
                {"name": "claim_id", "type": "string", "description": "id"},
                {"name": "service_date", "type": "date", "format": "past_date", "description": "care"},
                {"name": "status", "type": "string", "enum": ["submitted", "approved"], "description": "s"},
            ],
        }
    )
    spec = dc.spec_for_relationship(claim, {"column": "status", "initial": ["submitted"], "active": ["submitted"]})
    ok = {"claim_id": "C-1", "service_date": "2025-05-01", "status": "submitted"}  # no status rule on a past date
    assert dc.check_records([ok], spec, 1, None, NOW) == []
    errs = dc.check_records([dict(ok, service_date="2025-07-01")], spec, 1, None, NOW)
    assert errs == [
        "column 'service_date': 1 record(s) with service_date (format past_date) after the simulation time "
        "2025-06-02T09:00:00Z (e.g. record 0)"
    ]
