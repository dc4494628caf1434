"""The launch DAG through the real scheduler: an 8-point dress rehearsal with one point failing preflight (it
comes late), one dropping mid-event, the program feed killed and the ingest gateway killed one minute before T0,
then the wrap-up publishing cleared and rerun from the API as an operator would from the UI — the channels (the
portal article on the stack's real WordPress) must still hold exactly one of each publication."""
from __future__ import annotations

import pytest

from bridgecast.launch import publications
from devstack.rehearsal import DAG_ID, RehearsalOptions, count_on_channels, run

PUBLISH_TASKS = ["publish_portal_article", "publish_fanpage_post", "send_press_kit", "create_live_video"]


@pytest.fixture(scope="module")
def rehearsal(stack):
    # The program feed is also killed at T0+30 s for 20 s (the slate must take the live over, then give it back), and
    # the ingest gateway at T-60 s: the preflight moves to T-2 min so that its stream checks are over by then.
    return run(stack, RehearsalOptions.for_suite(kill_program_at_s=30, kill_gateway_before_t0_s=60,
                                                 preflight_min=2.0))


def mailbox_subjects(stack, event_id: str) -> list[str]:
    """The subjects of this event's alert mails in the mailbox sandbox (its .eml files; the body names the event)."""
    import email
    import email.header

    out = []
    for eml in (stack.layout.sandboxes / "smtp").rglob("*.eml"):
        message = email.message_from_bytes(eml.read_bytes())
        subject = str(email.header.make_header(email.header.decode_header(message["Subject"] or "")))
        bodies = [part.get_payload(decode=True) or b"" for part in message.walk() if not part.is_multipart()]
        if subject.startswith("[Bridgecast") and any(event_id.encode() in body for body in bodies):
            out.append(subject)
    return out


@pytest.mark.timeout(1500)
def test_eight_point_rehearsal_meets_its_figures(rehearsal, stack):
    failed = [(name, detail) for name, passed, detail in rehearsal.checks
              if not passed and not name.startswith("rehearsal wall time")]
    assert not failed, failed
    summary = rehearsal.summary
    assert summary["points_total"] == 8 and summary["preflight_no_go"] == ["ha-giang"]
    teams = [p for p in summary["points"] if p["kind"] == "team"]
    assert len(teams) == 9
    # every team's photos processed; the one broken file quarantined, nothing lost
    assert sum(p["photos_processed"] for p in teams) == 9 * 2
    assert sum(p["photos_quarantined"] for p in teams) == 1
    assert summary["recap"]["points"] == 8
    # the live path's figures (also in rehearsal.checks above): printed by the rehearsal
    figures = rehearsal.figures
    print("FIGURES", {k: v for k, v in figures.items() if k != "checks"})
    assert figures["t0_to_program_frames_s"] is not None and figures["slate_frame_matches"]
    # the gateway killed at T-60 s is back, timed from a publisher's side, and every point was still live at T0
    assert figures["gateway_back_s"] is not None and figures["gateway_back_s"] <= 5.0
    # the article read back from the real WordPress: every file it shows is served there, none uploaded twice
    media = figures["portal_media"]
    assert media["files"] > 2 and media["served"] == media["files"] and media["twins"] == 0, media
    assert media["link"].startswith(f"http://127.0.0.1:{stack.layout.ports.wordpress}/"), media
    # the article counts what happened: 8 points were seen live (ha-giang late), all 9 teams sent photos
    assert summary["points_live"] == 8 and summary["teams_with_photos"] == 9


@pytest.mark.timeout(300)
def test_each_incident_of_the_rehearsal_is_mailed_once_and_shown_on_the_board(rehearsal, stack):
    from bridgecast.alerts.incidents import incidents
    from bridgecast.storage import Storage

    subjects = mailbox_subjects(stack, rehearsal.event_id)
    expected = ["Hà Giang: KHÔNG ĐẠT kiểm tra trước giờ G (kiểm tra lần 1)",
                "Mất tín hiệu chương trình: fanpage đang phát màn hình chờ",
                "Tín hiệu chương trình đã trở lại trên fanpage", "Hà Nội mất tín hiệu"]
    for words in expected:
        matching = [s for s in subjects if words in s]
        assert len(matching) == 1, (words, subjects)
    records = incidents(Storage.from_connection(), rehearsal.event_id)
    assert {r["key"] for r in records} >= {"preflight-no-go:ha-giang", "slate-on:1", "program-back:1", "drop:ha-noi:1"}
    assert all(r["mail"] == "sent" for r in records), records


@pytest.mark.timeout(300)
def test_the_press_kit_links_to_the_portal_and_carries_the_recap_stills(rehearsal, stack):
    """What a newsroom gets: public links (the portal article and its media: the recap, a team's own video, the
    photos), never a storage credential or the internal S3 address; the poster and contact sheet attached; the
    links answer with the files themselves."""
    import requests

    from devstack.sandboxes.smtp import read_messages

    tag = f"{rehearsal.event_id}/{publications.PRESS_KIT.key}"
    [mail] = [m for m in read_messages(stack.layout.sandboxes / "smtp")
              if m.message["X-Bridgecast-Publication"] == tag]
    raw = mail.raw.decode("ascii", "replace")
    s3_address = f"127.0.0.1:{stack.layout.ports.s3}"
    assert "X-Amz-" not in raw and "AWSAccessKeyId" not in raw and s3_address not in mail.text + mail.html
    attached = {p.get_filename(): p.get_content() for p in mail.message.iter_attachments()}
    assert set(attached) == {"poster.jpg", "contact-sheet.jpg"}
    assert all(data[:2] == b"\xff\xd8" for data in attached.values())
    labelled = [line[2:].split(": ", 1) for line in mail.text.splitlines() if line.startswith("- ")]
    links = [url for _, url in labelled]
    assert links and links[0].endswith(".mp4") and len(links) > 2  # the recap, the team's video, then the photos
    # the team that filmed: its phone clip is in the portal article, linked with its name
    assert [label for label, url in labelled if label.startswith("Video của")] and \
        all(url.endswith(".mp4") for label, url in labelled if label.startswith("Video"))
    portal = f"127.0.0.1:{stack.layout.ports.wordpress}"  # the stack's real WordPress
    for url in links:
        assert portal in url, url  # what the portal serves to anyone
        answer = requests.get(url, timeout=30)
        assert answer.status_code == 200 and answer.content[:2] in (b"\xff\xd8", b"\x00\x00"), url


@pytest.mark.timeout(900)
def test_rerunning_the_wrap_up_publishing_posts_nothing_new(rehearsal, stack, airflow_api):
    from bridgecast.event import load_event

    event = load_event(stack.layout.var / "rehearsals" / rehearsal.event_id / "event.yaml")
    before = count_on_channels(stack, event)
    assert set(before) == {d.label for d in publications.ALL}  # counted by the launch's own definitions
    assert set(before.values()) == {1}, before
    for _ in range(2):
        airflow_api.clear_tasks(DAG_ID, rehearsal.run_id, PUBLISH_TASKS)
        run = airflow_api.wait_run(DAG_ID, rehearsal.run_id, timeout_s=600)
        assert run["state"] == "success"
    states = {ti["task_id"]: ti["state"] for ti in airflow_api.task_instances(DAG_ID, rehearsal.run_id)
              if ti["task_id"] in PUBLISH_TASKS}
    assert set(states.values()) == {"success"}, states
    outcome = airflow_api.xcom(DAG_ID, rehearsal.run_id, "publish_portal_article")
    assert outcome["action"] == "existing"
    assert count_on_channels(stack, event) == before
    # the reruns (and their publication retries) sent no alert twice: one mail per incident record
    from bridgecast.alerts.incidents import incidents
    from bridgecast.storage import Storage

    mailed = [r for r in incidents(Storage.from_connection(), rehearsal.event_id) if r["mail"] == "sent"]
    assert len(mailbox_subjects(stack, rehearsal.event_id)) == len(mailed)
