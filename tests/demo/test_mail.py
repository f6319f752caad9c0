"""The demo's invoices: one file per email, as the demo's banner says."""

from __future__ import annotations

from pathlib import Path

from django.core.mail import EmailMessage

from demo_shop.mail import EmailBackend


def test_emails_sent_in_the_same_second_land_in_files_of_their_own(tmp_path: Path) -> None:
    for n in range(6):  # as billing sends them: one backend per email, freed at once
        message = EmailMessage(f"Invoice {n}", "Thanks.", "shop@example.com", ["a@example.com"])
        EmailBackend(file_path=str(tmp_path)).send_messages([message])
    files = sorted(tmp_path.glob("*.log"))
    assert len(files) == 6
    assert sorted(path.read_text().count("Subject: Invoice") for path in files) == [1] * 6
