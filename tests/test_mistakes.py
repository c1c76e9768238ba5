"""rollout/mistakes.py: the ground truth of the offline assistant's injected mistakes, and
that the evaluator agrees with it on the fixture (every mistake kind; a repeated cancel the
server refuses has no observable effect and must pass)."""

from __future__ import annotations

import pytest
from rollout_fixture import make_outputs

from rollout import RolloutSettings, play_episode
from rollout.mistakes import EXPECTED, PASS, agreement, agrees, effects, expected_categories
from rollout.offline_assistant import MISTAKE_KINDS, OfflineAssistant
from rollout.transport import FastTransport


def test_every_mistake_kind_maps_to_evaluator_categories():
    from evaluator.verdicts import CATEGORY_ORDER

    assert set(EXPECTED) == set(MISTAKE_KINDS)
    for kind, by_task in EXPECTED.items():
        assert "*" in by_task, kind
        for cats in by_task.values():
            assert cats and cats <= set(CATEGORY_ORDER) - {"infra_error", "simulator_error"}, (kind, cats)


def test_expected_categories():
    assert expected_categories([], "action", observable=True) == PASS  # no mistake: a pass
    assert expected_categories(["wrong_argument"], "action", observable=False) == PASS  # no effect: a pass
    # (a changed linked argument of a cross-domain row breaks its link)
    assert expected_categories(["wrong_argument"], "action", True) == {"wrong_write_args", "broken_link"}
    assert expected_categories(["premature_end"], "lookup", True) == {"wrong_answer"}
    assert expected_categories(["premature_end"], "action", True) == {"missing_write"}
    assert expected_categories(["premature_end"], "auth_failure", True) == {"missing_write", "wrong_answer"}
    assert expected_categories(["unconfirmed_write"], "refusal", True) == {"unconfirmed_write"}
    assert expected_categories(["extra_call", "skipped_step"], "action", True) == {"extra_write"}  # the first
    assert agrees(None, PASS) and not agrees("missing_write", PASS) and agrees("extra_write", {"extra_write"})
    with pytest.raises(KeyError):
        expected_categories(["no_such_kind"], "action", True)


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Every mistake kind (and none) on the fixture's action, create, lookup and auth-failure
    rows (its refusal row is left out: the fixture policy states no rule, so even a clean
    episode tries the forbidden write)."""
    out, rows = make_outputs(tmp_path_factory.mktemp("mistakes"))
    rows = [r for r in rows if r["task_kind"] != "refusal"]
    eps = []
    with FastTransport(out / "servers" / "ClinicDesk") as t:
        for kind in (None, *MISTAKE_KINDS):
            for row in rows:
                ep = play_episode(row, 0, t, RolloutSettings(), assistant=OfflineAssistant(mistake=kind))
                eps.append(ep.model_copy(update={"episode_id": f"{ep.episode_id}-{kind}"}))
    return out, rows, eps


def test_effects_are_decided_by_replay(played):
    out, rows, eps = played
    eff = effects(eps, rows, out)
    by = {(e.query_id, e.mistakes[0].kind if e.mistakes else None): eff[e.episode_id] for e in eps}
    cancel, book = rows[0]["id"], rows[1]["id"]
    assert not any(eff[e.episode_id].observable for e in eps if not e.mistakes)  # clean: the golden outcome
    # the repeated cancel is refused by the server: same end state, same writes, no effect
    assert not by[(cancel, "extra_call")].observable
    # a second booking is a second record
    twice = by[(book, "extra_call")]
    assert twice.observable and not twice.state_same and not twice.writes_same
    unconfirmed = by[(cancel, "unconfirmed_write")]
    assert unconfirmed.observable and unconfirmed.state_same and not unconfirmed.policy_ok
    assert not by[(rows[2]["id"], "premature_end")].told_ok  # the lookup's answer was never told


def test_the_evaluator_agrees_with_the_injected_mistakes(played):
    evaluator = pytest.importorskip("evaluator")
    out, rows, eps = played
    verdicts = evaluator.evaluate_episodes(eps, rows, out, outputs_dir=out, in_process=True)
    report = agreement(eps, verdicts, rows, out)
    assert report["disagreements"] == []
    assert report["agree"] == report["episodes"] == len(eps)
    assert report["with_mistakes"] >= len(MISTAKE_KINDS) and report["unobservable"] >= 1
    assert set(report["by_kind"]) == {"none", *MISTAKE_KINDS}
