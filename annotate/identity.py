"""Who is saving: a signed-in Hugging Face account, a typed name, or an anonymous visitor. No Gradio here.

Sign-in exists where Gradio offers it: a Hugging Face Space whose README front matter has
``hf_oauth: true`` (the Space then sets ``OAUTH_CLIENT_ID`` and the other OAuth variables, and Gradio
adds the login routes and a signed session cookie). There the Label tab shows "Sign in with Hugging
Face" and a handler receives the visitor's ``gr.OAuthProfile``, which only Gradio's session middleware
can produce (a client cannot send one); the typed name is not used. Elsewhere (a local run) nobody can
sign in and the typed name is the annotator.

=================  =============================================================  ====================
where              who the row names                                              ``identity`` column
=================  =============================================================  ====================
sign-in, signed    the Hugging Face username                                      ``hf``
sign-in, not       ``anonymous-<8 hex>``, one per browser session                 ``anonymous``
no sign-in         the typed name (not verified: anyone can type any name)        ``name``
=================  =============================================================  ====================

``ANODFDNET_REQUIRE_LOGIN=1`` makes every write come from a signed-in account: a save, a review, a queue
hold, and any job a reviewer starts (so, where sign-in does not exist, none at all). ``ANODFDNET_REVIEWERS``
is a comma-separated list of who may review: Hugging Face usernames where sign-in exists or login is
required (a reviewer must then be signed in as a listed account; a typed name never matches), typed
names elsewhere (unverified: keep such a deployment private).

The gates, one per kind of request, each raising :class:`~anodfdnet.errors.UserError` with the sentence
to show: :func:`who` (a save), :func:`queue_identity` (taking a queue pair), :func:`reviewer` (every
reviewer action: a verdict, and any job a reviewer starts, e.g. an adaptation run). Call the gate first,
before anything of the request is read.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from anodfdnet.errors import UserError

from .checks import check_annotator

ENV_REQUIRE_LOGIN = "ANODFDNET_REQUIRE_LOGIN"
ENV_REVIEWERS = "ANODFDNET_REVIEWERS"


def oauth_available() -> bool:
    """True on a Hugging Face Space with OAuth enabled (``hf_oauth: true``), where Gradio's login works."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("SPACE_ID")) and bool(os.environ.get("OAUTH_CLIENT_ID"))


def login_required() -> bool:
    return os.environ.get(ENV_REQUIRE_LOGIN, "").strip().lower() in ("1", "true", "yes", "on")


def reviewers() -> tuple[str, ...]:
    return tuple(n.strip() for n in os.environ.get(ENV_REVIEWERS, "").split(",") if n.strip())


@dataclass(frozen=True)
class Who:
    name: str  # the annotator column
    identity: str  # hf | name | anonymous

    @property
    def verified(self) -> bool:
        """A signed-in Hugging Face account (Gradio's signed session cookie), not a typed or anonymous name."""
        return self.identity == "hf"

    @property
    def label(self) -> str:
        """How the page names this person."""
        return {"hf": f"{self.name} (signed in with Hugging Face)", "name": f"{self.name} (typed name)",
                "anonymous": f"{self.name} (not signed in)"}[self.identity]


def username(profile) -> str | None:
    """The username of a ``gr.OAuthProfile`` (or a dict with ``preferred_username``), else None."""
    if profile is None:
        return None
    name = getattr(profile, "username", None) or (profile.get("preferred_username") if isinstance(profile, dict) else None)
    return str(name) if name else None


def who(profile, typed_name, session: str | None, *, oauth: bool | None = None, require: bool | None = None) -> Who:
    """The identity a save is recorded under; a UserError when this save is not allowed."""
    oauth = oauth_available() if oauth is None else oauth
    require = login_required() if require is None else require
    account = username(profile)
    if account:
        return Who(check_annotator(account), "hf")
    if require:
        if oauth:
            raise UserError("sign in with Hugging Face first (the button at the top of the tab): this app saves only "
                            "labels of signed-in annotators.")
        raise UserError(f"this app saves only labels of signed-in annotators ({ENV_REQUIRE_LOGIN}=1), but sign-in is "
                        "not available here (it needs a Hugging Face Space with hf_oauth: true).")
    if oauth:
        return Who("anonymous-" + hashlib.sha256(f"anodfdnet-session\0{session or ''}".encode()).hexdigest()[:8], "anonymous")
    return Who(check_annotator(typed_name), "name")


def queue_identity(profile, typed_name, session: str | None, *, oauth: bool | None = None,
                   require: bool | None = None) -> Who:
    """Who asks for a queue pair (the hold is theirs). Like :func:`who`, except that where sign-in does not
    exist and login is not required a visitor may take a pair before typing a name (``Who("", "name")``:
    served any pair; the name is checked at Save). With login required, nobody unsigned gets a pair."""
    require = login_required() if require is None else require
    oauth = oauth_available() if oauth is None else oauth
    if not oauth and not require and not (typed_name or "").strip():
        return Who("", "name")
    return who(profile, typed_name, session, oauth=oauth, require=require)


def reviewer(profile, typed_name, *, oauth: bool | None = None, require: bool | None = None) -> Who:
    """The reviewer making this request; a UserError unless they are on the ``ANODFDNET_REVIEWERS`` list.

    The one check for every reviewer action, on the server, whatever the page shows: a verdict, and any job
    a reviewer starts (e.g. an adaptation run). Where sign-in exists, or ``ANODFDNET_REQUIRE_LOGIN=1``, the
    reviewer is the signed-in account (``identity == "hf"``, verified by Gradio's signed session cookie) and
    the typed name is ignored; only where neither holds is a typed name matched (not verified)."""
    oauth = oauth_available() if oauth is None else oauth
    require = login_required() if require is None else require
    allowed = reviewers()
    if not allowed:
        raise UserError(f"reviewing is off: set {ENV_REVIEWERS} to the reviewers' "
                        + ("Hugging Face usernames." if oauth or require else "names."))
    account = username(profile)
    if oauth or require:
        if not account:
            if oauth:
                raise UserError("sign in with Hugging Face to review.")
            raise UserError(f"reviews need a signed-in account ({ENV_REQUIRE_LOGIN}=1), but sign-in is not available "
                            "here (it needs a Hugging Face Space with hf_oauth: true).")
        person = Who(check_annotator(account), "hf")
    else:
        person = Who(check_annotator(typed_name, "reviewer"), "name")
    if person.name not in allowed:
        raise UserError(f"{person.name} is not a reviewer here; ask the app's owner to add you to {ENV_REVIEWERS}.")
    return person
