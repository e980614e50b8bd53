import sys

from bench import (
    access,
    agent_footprint,
    console,
    enrollment,
    fanout,
    relay_fanout,
    remote_start,
    status_plane,
    trigger_alert,
)

if __name__ == "__main__":
    sys.exit(
        status_plane.main([])
        or relay_fanout.main([])
        or remote_start.main([])
        or agent_footprint.main([])
        or trigger_alert.main([])
        or access.main([])
        or fanout.main([])
        or console.main([])
        or enrollment.main([])
    )
