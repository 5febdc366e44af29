// jitsi-xxl: overrides of the packaged config.js for the visitors design.
// The bootstrap appends this file to /etc/jitsi/meet/trial.example.org-config.js between markers.
// XMPP over WebSocket: the client adds ?vnode=vN when jicofo redirects it to a visitor node.
config.websocket = "wss://trial.example.org/xmpp-websocket";
config.bosh = "https://trial.example.org/http-bind";
config.hosts.domain = "trial.example.org";
config.hosts.muc = "conference.trial.example.org";
// Promotion approved by a moderator goes through jicofo's HTTP conference request.
config.conferenceRequestUrl = "https://trial.example.org/conference-request/v1";
