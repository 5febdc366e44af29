"""The XMPP names of a deployment: one domain gives every host, component and account name
the signaling VM's and the bridges' configs use."""

from __future__ import annotations

from components.model.project import VISITOR_DOMAIN_SUFFIX


def names(domain: str) -> dict[str, str]:
    """Host, component and account names under `domain` (and the visitor nodes' domain)."""
    auth = f"auth.{domain}"
    vnode_auth = f"auth.{VISITOR_DOMAIN_SUFFIX}"
    return {
        "domain": domain,
        "auth_domain": auth,
        "muc": f"conference.{domain}",
        "internal_muc": f"internal.{auth}",
        "brewery_jid": f"jvbbrewery@internal.{auth}",
        "focus_jid": f"focus@{auth}",
        "jvb_jid": f"jvb@{auth}",
        "focus_component": f"focus.{domain}",
        "visitors_component": f"visitors.{domain}",
        "polls": f"polls.{domain}",
        "lobby": f"lobby.{domain}",
        "breakout": f"breakout.{domain}",
        "metadata": f"metadata.{domain}",
        "speakerstats": f"speakerstats.{domain}",
        "endconference": f"endconference.{domain}",
        "avmoderation": f"avmoderation.{domain}",
        "recorder": f"recorder.{domain}",
        "vnode_auth_domain": vnode_auth,
        "vnode_focus_jid": f"focus@{vnode_auth}",
    }
