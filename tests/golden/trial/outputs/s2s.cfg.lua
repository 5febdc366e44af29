-- Main prosody <-> visitor nodes, over loopback. Targets must be IP addresses.
-- s2sout_override replaces upstream's removed s2s_connect_overrides (mod_s2soutinjection).
s2sout_override = {
    ["conference.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["polls.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["conference.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["polls.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
}

-- Only the visitor nodes may use s2s with the main prosody.
s2s_whitelist = {
    "conference.v1.meet.jitsi";
    "v1.meet.jitsi";
    "polls.v1.meet.jitsi";
    "conference.v2.meet.jitsi";
    "v2.meet.jitsi";
    "polls.v2.meet.jitsi";
}
