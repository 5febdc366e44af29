-- Visitor prosody v8 (v8.meet.jitsi). Rendered by jitsi-xxl: edit the stack, not this file.
-- Shape: jitsi-meet resources/extra-large-conference/prosody.cfg.lua.visitor.template.

pidfile = "/run/prosody-v8/prosody.pid"
data_path = "/var/lib/prosody-v8"
log = {
    info = "/var/log/prosody-v8/prosody.log";
    error = "/var/log/prosody-v8/prosody.err";
}
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/" }
admins = { "focus@auth.meet.jitsi" }
network_backend = "epoll"
-- the listen backlog is a network setting; a top-level tcp_backlog is ignored
network_settings = { tcp_backlog = 511 }

-- Every listener of a visitor node is on loopback: jicofo and nginx are on this VM.
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { 52228 }
c2s_direct_tls_ports = {}
s2s_ports = { 52698 }
s2s_direct_tls_ports = {}
http_interfaces = { "127.0.0.1" }
http_ports = { 52808 }
https_ports = {}
component_ports = {}

modules_enabled = {
    "saslauth"; "tls"; "dialback"; "disco"; "posix"; "secure_interfaces"; "limits";
    "websocket"; "bosh";
    "s2s_bidi"; "s2s_whitelist"; "s2sout_override"; "certs_s2soutinjection";
}
modules_disabled = { "offline"; "pubsub"; "register" }
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
s2s_secure_auth = false

-- Only the main prosody's names may talk to this node, and they live on loopback.
s2s_whitelist = { "conference.meet.example.org"; "visitors.meet.example.org"; "meet.example.org"; "polls.meet.example.org" }
s2sout_override = {
    ["conference.meet.example.org"] = "tcp://127.0.0.1:5269";
    ["visitors.meet.example.org"] = "tcp://127.0.0.1:5269";
    ["meet.example.org"] = "tcp://127.0.0.1:5269";
    ["polls.meet.example.org"] = "tcp://127.0.0.1:5269";
}

-- STUN/TURN on this VM's coturn, with short-lived credentials from the shared secret
external_service_secret = "@@TURN_SECRET@@"
external_services = {
    { type = "stun", host = "meet.example.org", port = 3478, transport = "udp" };
    { type = "turn", host = "meet.example.org", port = 3478, transport = "udp", secret = true, ttl = 86400, algorithm = "turn" };
    { type = "turns", host = "meet.example.org", port = 5349, transport = "tcp", secret = true, ttl = 86400, algorithm = "turn" };
}

muc_mapper_domain_base = "v8.meet.jitsi"
main_domain = "meet.example.org"
component_admins_as_room_owners = true

smacks_max_unacked_stanzas = 5
smacks_hibernation_time = 60
unlimited_jids = { "focus@auth.meet.jitsi" }
limits = {
    c2s = { rate = "512kb/s" };
}

consider_websocket_secure = true
consider_bosh_secure = true
bosh_max_inactivity = 60

VirtualHost "v8.meet.jitsi"
    authentication = "jitsi-anonymous"
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = {
        "bosh"; "ping"; "external_services"; "smacks"; "jiconop"; "conference_duration";
        "features_identity";
        -- the room of the session (polls_component finds a visitor's room through it)
        "jitsi_session";
    }
    main_muc = "conference.v8.meet.jitsi"

-- jicofo logs in here as focus@auth.meet.jitsi.
VirtualHost "auth.meet.jitsi"
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = { "limits_exception"; "ping"; "smacks" }
    authentication = "internal_hashed"
    smacks_hibernation_time = 15

Component "conference.v8.meet.jitsi" "muc"
    storage = "memory"
    muc_room_cache_size = 10000
    restrict_room_creation = true
    modules_enabled = {
        "muc_hide_all"; "muc_domain_mapper"; "muc_meeting_id"; "fmuc"; "muc_max_occupants";
        -- components do not inherit the global s2s modules
        "s2s_bidi"; "s2s_whitelist"; "s2sout_override";
    }
    -- visitors do not see each other: their presence is not broadcast
    muc_room_default_presence_broadcast = { visitor = false; participant = true; moderator = true }
    muc_room_locking = false
    muc_room_default_public_jids = true
    -- hard cap per room on this node; the main room's participants do not count
    muc_max_occupants = 2000
    muc_access_whitelist = { "meet.example.org"; "focus@auth.meet.jitsi" }

Component "polls.v8.meet.jitsi" "polls_component"
