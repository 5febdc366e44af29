


pidfile = "/run/prosody-v7/prosody.pid"
data_path = "/var/lib/prosody-v7"
log = {
    info = "/var/log/prosody-v7/prosody.log";
    error = "/var/log/prosody-v7/prosody.err";
}
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/"; "/usr/local/lib/jitsi-xxl/prosody-plugins/" }
admins = { "focus@auth.meet.jitsi" }
network_backend = "epoll"


network_settings = { tcp_backlog = 512 }


interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { 52227 }
c2s_direct_tls_ports = {}
s2s_ports = { 52697 }
s2s_direct_tls_ports = {}
http_interfaces = { "127.0.0.1" }
http_ports = { 52807 }
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


s2s_whitelist = { "conference.meet.example.org"; "visitors.meet.example.org"; "meet.example.org"; "polls.meet.example.org" }
s2sout_override = {
    ["conference.meet.example.org"] = "tcp://127.0.0.1:5269";
    ["visitors.meet.example.org"] = "tcp://127.0.0.1:5269";
    ["meet.example.org"] = "tcp://127.0.0.1:5269";
    ["polls.meet.example.org"] = "tcp://127.0.0.1:5269";
}



external_service_secret = "@@XXL_SECRET_TURN_SECRET@@"

external_service_ttl = 28800
external_services = {
    { type = "stun", host = "meet.example.org", port = 3478, transport = "udp" };
    { type = "turn", host = "meet.example.org", port = 3478, transport = "udp", secret = true, algorithm = "turn" };
    { type = "turns", host = "meet.example.org", port = 443, transport = "tcp", secret = true, algorithm = "turn" };
}

muc_mapper_domain_base = "v7.meet.jitsi"
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

VirtualHost "v7.meet.jitsi"


    authentication = "token"
    app_id = "jitsi-xxl"
    app_secret = "@@XXL_SECRET_JWT_APP_SECRET@@"
    allow_empty_token = true
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = {
        "bosh"; "ping"; "external_services"; "smacks"; "jiconop"; "conference_duration";
        "features_identity";

        "jitsi_session";
    }
    main_muc = "conference.v7.meet.jitsi"


VirtualHost "auth.meet.jitsi"
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = { "limits_exception"; "ping"; "smacks" }
    authentication = "internal_hashed"
    smacks_hibernation_time = 15

Component "conference.v7.meet.jitsi" "muc"
    storage = "memory"
    muc_room_cache_size = 10000
    restrict_room_creation = true
    modules_enabled = {
        "muc_hide_all"; "muc_domain_mapper"; "muc_meeting_id"; "fmuc"; "muc_max_occupants";
        "muc_rate_limit";
        "token_verification";

        "s2s_bidi"; "s2s_whitelist"; "s2sout_override";
    }

    muc_room_default_presence_broadcast = { visitor = false; participant = true; moderator = true }
    muc_room_locking = false
    muc_room_default_public_jids = true

    muc_max_occupants = 2000

    muc_rate_joins = 67
    muc_rate_leaves = 67
    muc_access_whitelist = { "meet.example.org"; "focus@auth.meet.jitsi" }

Component "polls.v7.meet.jitsi" "polls_component"
