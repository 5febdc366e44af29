


pidfile = "/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
log = {
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
}
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/"; "/usr/local/lib/jitsi-xxl/prosody-plugins/" }
certificates = "certs"


admins = { "focus@auth.meet.example.org" }


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
unlimited_jids = { "focus@auth.meet.example.org"; "jvb@auth.meet.example.org" }



s2sout_override = {
    ["conference.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["polls.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["conference.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["polls.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["conference.v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["polls.v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["conference.v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["polls.v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["conference.v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["polls.v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["conference.v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["polls.v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["conference.v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["polls.v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["conference.v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
    ["v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
    ["polls.v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
}


s2s_whitelist = {
    "conference.v1.meet.jitsi";
    "v1.meet.jitsi";
    "polls.v1.meet.jitsi";
    "conference.v2.meet.jitsi";
    "v2.meet.jitsi";
    "polls.v2.meet.jitsi";
    "conference.v3.meet.jitsi";
    "v3.meet.jitsi";
    "polls.v3.meet.jitsi";
    "conference.v4.meet.jitsi";
    "v4.meet.jitsi";
    "polls.v4.meet.jitsi";
    "conference.v5.meet.jitsi";
    "v5.meet.jitsi";
    "polls.v5.meet.jitsi";
    "conference.v6.meet.jitsi";
    "v6.meet.jitsi";
    "polls.v6.meet.jitsi";
    "conference.v7.meet.jitsi";
    "v7.meet.jitsi";
    "polls.v7.meet.jitsi";
    "conference.v8.meet.jitsi";
    "v8.meet.jitsi";
    "polls.v8.meet.jitsi";
}

Include "conf.d/*.cfg.lua"
