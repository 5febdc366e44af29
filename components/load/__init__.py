"""Load against the signaling twin: crowds of viewers the way the web app joins, and what they cost.

`session` speaks the web app's XMPP over WebSocket, lean enough for thousands per process;
`crowd` runs one share of a crowd (or the hosts on stage) from a schedule, in its own process;
`probes` reads each server process's CPU and memory from the container; `run` puts the three
together against a booted twin; `report` turns runs into the README's table and plot.
"""
