"""People and access: who may do what (one policy table), and the credentials that prove who
someone is (password hashes, TOTP, sign-in throttling, sessions, API keys).

The policy, throttle, session and key modules are pure: time comes in as an argument and
nothing here touches a database or the network; the center's storage fills their records.
"""
