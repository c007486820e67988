"""Email delivery of alerts over SMTP (settings ``smtp_*``): STARTTLS and login when set.

Errors become ``DeliveryFailed`` with a message that names the server and what went wrong,
never the password."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from segbridge.alerts.notification import DeliveryFailed, Notification
from segbridge.core.settings import Settings


def smtp_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def send_email(settings: Settings, recipients: list[str], notification: Notification) -> None:
    """Send ``notification`` to ``recipients`` through the configured SMTP server."""
    if not settings.smtp_host:
        raise DeliveryFailed("no mail server is configured (set SEGBRIDGE_SMTP_HOST)")
    message = EmailMessage()
    message["Subject"] = notification.subject
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message.set_content(notification.text)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.http_timeout_seconds) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user and settings.smtp_password is not None:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(f"the mail server {where} refused the login of "
                             f"{settings.smtp_user} ({exc.smtp_code})") from None
    except smtplib.SMTPException as exc:
        raise DeliveryFailed(f"the mail server {where} refused the email: "
                             f"{type(exc).__name__}") from None
    except OSError as exc:
        raise DeliveryFailed(f"could not reach the mail server {where}: "
                             f"{exc.strerror or type(exc).__name__}") from None
