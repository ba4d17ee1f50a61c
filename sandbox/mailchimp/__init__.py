"""Mailchimp Marketing API 3.0 emulator: ``create_app`` serves it, ``seed`` fills it."""

from __future__ import annotations

from sandbox.mailchimp.account import api_key_for
from sandbox.mailchimp.app import create_app

__all__ = ["api_key_for", "create_app"]
