


pidfile = "/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
log = {
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
}
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/"; "/usr/local/lib/jitsi-xxl/prosody-plugins/" }
certificates = "certs"


admins = { "focus@auth.trial.example.org" }


network_settings = { tcp_backlog = 4096 }

modules_enabled = {
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "limits";

    "s2s_bidi"; "certs_s2soutinjection"; "s2sout_override"; "s2s_whitelist";
}

modules_disabled = {}



c2s_interfaces = { "127.0.0.1"; "10.0.16.10" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = {}
s2s_interfaces = { "127.0.0.1" }
s2s_ports = { 5269 }
s2s_direct_tls_ports = {}
http_interfaces = { "127.0.0.1" }
http_ports = { 5280 }
https_ports = {}
component_interfaces = { "127.0.0.1" }
component_ports = {}



s2s_secure_auth = false

limits = {
    c2s = { rate = "512kb/s"; burst = "2s" };
}
unlimited_jids = { "focus@auth.trial.example.org"; "jvb@auth.trial.example.org" }



s2sout_override = {
    ["conference.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["polls.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["conference.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["polls.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
}


s2s_whitelist = {
    "conference.v1.meet.jitsi";
    "v1.meet.jitsi";
    "polls.v1.meet.jitsi";
    "conference.v2.meet.jitsi";
    "v2.meet.jitsi";
    "polls.v2.meet.jitsi";
}

Include "conf.d/*.cfg.lua"
