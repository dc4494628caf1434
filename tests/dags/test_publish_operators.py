"""The pieces under both post DAGs that need no stack: the deferrable publish operator's timing, the approval's
deadline and decisions, the per-publication lock, "has it gone out?", and the form's photo picker."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from bridgecast.event import load_event
from bridgecast.ledger import PUBLISHED, Ledger, LedgerRow
from bridgecast.posts import operators
from bridgecast.posts.media import MediaNotReady, build_picker, read_picker, thumbnail_key
from bridgecast.posts.operators import WAKE_EARLY_S, PostApprovalOperator, PublishPostOperator, respondents
from bridgecast.posts.publishing import is_out, publication_lock

REPO = Path(__file__).resolve().parents[2]
EVENT = load_event(REPO / "config" / "event.yaml")


def now() -> datetime:
    return datetime.now(timezone.utc)


def item(publish_at: datetime, action: str = "publish") -> dict:
    return {"source": "calendar", "key": "calendar/bai", "post_id": "bai", "channel": "fanpage", "action": action,
            "publish_at": publish_at.isoformat(), "label": "bai · fanpage · đăng"}


def test_a_due_post_waits_deferred_until_shortly_before_its_minute():
    at = now() + timedelta(minutes=5)
    with pytest.raises(TaskDeferred) as deferred:
        PublishPostOperator(task_id="publish_post", item=item(at)).execute({})
    assert deferred.value.method_name == "resume"
    assert deferred.value.trigger.moment == at - timedelta(seconds=WAKE_EARLY_S)


def test_other_actions_and_late_posts_run_at_once(monkeypatch):
    monkeypatch.setattr("bridgecast.posts.tasks.carry_out", lambda it: {"done": it["action"]})
    future = now() + timedelta(days=1)
    assert PublishPostOperator(task_id="p", item=item(future, "update")).execute({}) == {"done": "update"}
    assert PublishPostOperator(task_id="p", item=item(now() - timedelta(minutes=1))).execute({}) == {
        "done": "publish"}


def test_missing_media_are_looked_for_again_and_once_more_exactly_at_the_deadline(monkeypatch):
    from bridgecast.posts.content import PostContent

    content = PostContent(key="calendar/bai", label="bai", channels=("fanpage",), title="T", body="B",
                          publish_at=now() - timedelta(seconds=20), media_wait=timedelta(seconds=40))

    def missing(_item):
        raise MediaNotReady(content, ["a.jpg"])

    monkeypatch.setattr("bridgecast.posts.tasks.carry_out", missing)
    with pytest.raises(TaskDeferred) as deferred:
        PublishPostOperator(task_id="p", item=item(content.publish_at)).resume({})
    assert deferred.value.trigger.moment == content.publish_at + content.media_wait  # 20 s left < the 30 s poll


class FakeTI:
    def __init__(self, post: dict):
        self.post, self.pushed = post, {}

    def xcom_pull(self, task_ids, key="return_value"):
        return self.post

    def xcom_push(self, key, value):
        self.pushed[key] = value


def approval() -> PostApprovalOperator:
    return PostApprovalOperator(task_id="approve_post", subject="Duyệt bài", body="…")


def test_an_approval_opened_after_the_publish_time_expires_at_once():
    ti = FakeTI({"publish_at": (now() - timedelta(seconds=1)).isoformat(), "title": "T"})
    with pytest.raises(AirflowSkipException, match="Hết hạn duyệt"):
        approval().execute({"ti": ti})
    assert ti.pushed["decision"]["decision"] == "expired"


def test_no_answer_by_the_deadline_is_expired_and_an_answer_is_recorded():
    ti = FakeTI({})
    with pytest.raises(AirflowSkipException, match="Hết hạn duyệt"):
        approval().execute_complete({"ti": ti}, {"error": "timeout passed", "error_type": "timeout"})
    assert ti.pushed["decision"]["decision"] == "expired"
    answer = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": now(),
              "responded_by_user": {"id": "approver", "name": "approver"}}
    assert approval().execute_complete({"ti": ti}, answer)["chosen_options"] == ["Approve"]
    assert ti.pushed["decision"] == {**ti.pushed["decision"], "decision": "approved", "detail": "by approver"}


@pytest.mark.parametrize("raw,expected", [(None, ["approver"]), ('["an", "binh"]', ["an", "binh"]),
                                          ("an, binh", ["an", "binh"]), ('"chi"', ["chi"])])
def test_the_approvers_come_from_a_variable(monkeypatch, raw, expected):
    from airflow.sdk import Variable

    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: raw))
    assert [u["id"] for u in operators.approvers()] == expected


def test_two_attempts_on_the_same_publication_run_one_after_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGECAST_VAR", str(tmp_path))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    spans = []

    def attempt():
        with publication_lock(ledger, "e", "fanpage", "calendar/bai"):
            start = time.monotonic()
            time.sleep(0.3)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 >= a1  # never overlapping
    with publication_lock(ledger, "e", "portal", "calendar/bai"):  # another publication is not held up
        pass


def _row(extra: dict, status: str = PUBLISHED) -> LedgerRow:
    t = now()
    return LedgerRow("e", "fanpage", "calendar/bai", status, "1", None, "h", 1, None, extra, t, t, t)


def test_what_counts_as_gone_out():
    future, past = (now() + timedelta(hours=1)).isoformat(), (now() - timedelta(hours=1)).isoformat()
    assert not is_out(_row({"scheduled": True, "publish_at": future}))  # a Facebook scheduled post
    assert is_out(_row({"scheduled": True, "publish_at": past}))  # Facebook has published it
    assert not is_out(_row({"status": "future", "date_gmt": future[:19]}))  # a WordPress future post
    assert is_out(_row({}))
    assert not is_out(_row({}, status="pending"))


def test_the_photo_picker_lists_processed_photos_by_point_and_local_time_newest_first():
    photos = [{"key": f"{EVENT.id}/{point}/processed/web/{name}.jpg", "point": point, "size": 1,
               "modified": f"2020-05-23T0{hour}:{minute}+00:00"}
              for point, name, hour, minute in (("tam-dao", "c3", 3, "15:00"), ("vinh-yen", "a3", 2, "15:40"),
                                                ("vinh-yen", "a2", 2, "15:10"), ("vinh-yen", "a1", 1, "12:00"))]
    picker = build_picker(EVENT, photos)
    order = [p.id for p in EVENT.points]
    assert order.index("vinh-yen") < order.index("tam-dao")
    assert picker["keys"] == [photos[1]["key"], photos[2]["key"], photos[3]["key"], photos[0]["key"]]
    labels = [picker["labels"][key] for key in picker["keys"]]
    # two photos of the same point and minute are told apart
    assert labels == ["Thành phố Vĩnh Yên — 09:15 23/05", "Thành phố Vĩnh Yên — 09:15 23/05 (2)",
                      "Thành phố Vĩnh Yên — 08:12 23/05", "Huyện Tam Đảo — 10:15 23/05"]
    assert picker["points"] == {"tam-dao": 1, "vinh-yen": 3}


def test_without_airflow_behind_the_parse_the_picker_is_empty_and_the_form_takes_typed_keys():
    assert read_picker() == {"keys": [], "labels": {}}


def test_the_approval_thumbnail_is_the_thumb_rendition_of_a_web_photo():
    assert thumbnail_key(f"{EVENT.id}/vinh-yen/processed/web/0123456789abcdef.jpg") == \
        f"{EVENT.id}/vinh-yen/processed/thumb/0123456789abcdef.jpg"
    assert thumbnail_key(f"{EVENT.id}/vinh-yen/processed/poster/0123456789abcdef.jpg") is None
    assert thumbnail_key("elsewhere/photo.jpg") is None


# --- nobody approves their own post -------------------------------------------------------------------------------
APPROVERS = [{"id": "approver", "name": "approver"}, {"id": "lan", "name": "lan"}]


def test_the_author_is_never_among_the_respondents():
    assert respondents(APPROVERS, "lan") == [{"id": "approver", "name": "approver"}]
    assert respondents(APPROVERS, "bientap") == APPROVERS  # an editor's post: every approver
    assert respondents(APPROVERS, None) == APPROVERS  # a run with no user behind it (the calendar's, a schedule)


def test_a_post_whose_only_approver_is_its_author_fails_and_says_why(monkeypatch):
    """Stopped with a Vietnamese message instead of opening to anyone (an empty list would)."""
    monkeypatch.setattr(operators, "approvers", lambda: [{"id": "lan", "name": "lan"}])
    ti = FakeTI({"publish_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(), "title": "T"})
    gate = approval()
    with pytest.raises(AirflowFailException, match="không ai được duyệt bài của chính mình"):
        gate.execute({"ti": ti, "dag_run": SimpleNamespace(triggering_user_name="lan")})
    assert gate.assigned_users == []
