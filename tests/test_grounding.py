"""The s17 hallucination check: invented values are caught, instance values pass."""

from agentskiller.grounding import extract_values, missing_values, ungrounded

INSTANCE = {
    "values": {
        "patient_id": "417a8105-4a80-4bbe-84a5-7322a8902e32",
        "new_date": "2025-07-15T14:00:00Z",
        "reason": "knee pain",
        "Patient.full_name": "John Smith",
        "amount": 120.5,
    },
    "records": {
        "Patient": {
            "patient_id": "417a8105-4a80-4bbe-84a5-7322a8902e32",
            "full_name": "John Smith",
            "email": "john.smith@example.org",
        },
        "Clinician": {"clinician_id": "appointment_n00001", "full_name": "Dr. Kenji Sato"},
    },
}
GOOD = (
    "Hi, this is John Smith (patient 417a8105-4a80-4bbe-84a5-7322a8902e32, john.smith@example.org). "
    "Please move my visit with Dr. Kenji Sato to 2025-07-15T14:00:00Z, or at least on 2025-07-15; "
    "it is about my knee pain and the 120.5 fee. Reference appointment_n00001."
)


def test_values_from_the_instance_pass():
    assert ungrounded(GOOD, [INSTANCE]) == []


def test_extracts_each_kind():
    kinds = {k for k, _ in extract_values(GOOD)}
    assert {"email", "date", "id", "number", "name"} <= kinds


def test_invented_name_is_caught():
    bad = ungrounded("Hello, this is Mary Jones calling about my knee pain.", [INSTANCE])
    assert any("Mary Jones" in b for b in bad)


def test_invented_id_date_email_and_number_are_caught():
    text = (
        "My ID is 99999999-aaaa-4bbb-8ccc-000000000000, email fake@nowhere.com, "
        "move it to 2025-12-24T10:00:00Z, the fee was 450."
    )
    bad = " ".join(ungrounded(text, [INSTANCE]))
    for v in ("99999999-aaaa", "fake@nowhere.com", "2025-12-24", "450"):
        assert v in bad, v


def test_plain_prose_is_not_flagged():
    assert ungrounded("Hi there, could you help me with something? Thanks a lot, I need it by 3 pm.", [INSTANCE]) == []


def test_missing_values():
    assert missing_values("move it to 2025-07-15T14:00:00Z", ["2025-07-15T14:00:00Z", "knee pain"]) == ["knee pain"]


# ------------------------------------------------ the user's own profile values
ADDRESS = "60610 Chad Village Apt. 172"
PHONE = "+1-902-181-0132"
USER = {
    "values": {"account_holder_id": "ACH-96956"},
    "records": {
        "AccountHolder": {
            "account_holder_id": "ACH-96956",
            "full_name": "Maria Wilson",
            "mailing_address": ADDRESS,
            "phone": PHONE,
        }
    },
}


def test_compound_values_of_the_users_record_pass_whole():
    assert ungrounded(ADDRESS, [USER]) == []
    assert ungrounded(f"I live at {ADDRESS.lower()}, call me on {PHONE}.", [USER]) == []
    assert ungrounded("my number is (902) 181-0132", [USER]) == []  # same digits, other format


def test_an_invented_street_number_or_phone_digit_is_caught():
    assert ungrounded("999 Chad Village Apt. 172", [USER]) == ["'999' (number)", "'172' (number)"]
    assert ungrounded("60610 Chad Village Apt. 173", [USER])  # one changed digit breaks the match
    assert ungrounded("+1-902-181-0133", [USER]) == ["'+1-902-181-0133' (phone)"]


# ------------------------------------------------ natural renderings of instance values
from agentskiller.grounding import mentions  # noqa: E402

NATURAL = {
    "values": {
        "scheduled_at": "2025-07-06T10:00:00Z",
        "check_in_date": "2025-08-14",
        "agenda": "course_planning",
        "term": "spring_2026",
        "balance": 54159.96,
        "nights": 12,
        "course_id": "COU-72897",
    }
}


def test_natural_rendering_of_an_instance_value_passes_both_checks():
    text = (
        "Book it for Sunday, July 6, 2025 at 10:00 AM UTC to talk about course planning, for the spring 2026 "
        "term, checking in on 14 August 2025 for 12 nights, with an opening deposit of $54,159.96, "
        "course COU-72897."
    )
    assert ungrounded(text, [NATURAL]) == []
    assert missing_values(text, list(NATURAL["values"].values())) == []
    assert mentions("July 6, 2025 at 10 am", "2025-07-06T10:00:00Z")
    assert mentions("the course-planning slot", "course_planning")
    assert ungrounded("at 10:00 UTC on July 6", [NATURAL]) == []


def test_natural_rendering_of_a_different_value_fails():
    # another day, another hour, a weekday that does not fit, an impossible date
    for text in (
        "July 7, 2025 at 10:00 AM",
        "July 6, 2025 at 11:00 AM",
        "Monday, July 6, 2025",
        "June 31, 2025",
        "August 15th, 2025",
        "at 11:30",
    ):
        assert ungrounded(text, [NATURAL]), text
    assert not mentions("July 7, 2025 at 10:00 AM", "2025-07-06T10:00:00Z")
    assert not mentions("July 6, 2025", "2025-07-06T10:00:00Z")  # the time is part of the value
    assert not mentions("to talk about career", "course_planning")  # another enum value
    assert not mentions("for the spring 2025 term", "spring_2026")
    assert ungrounded("for the spring 2027 term", [NATURAL]) == ["'2027' (number)"]
    assert not mentions("for 13 nights", 12) and ungrounded("for 13 nights", [NATURAL]) == ["'13' (number)"]
    assert not mentions("$54,159.97", 54159.96)
    # IDs are never rewritten: only the verbatim ID counts
    assert not mentions("course cou 72897", "COU-72897")
