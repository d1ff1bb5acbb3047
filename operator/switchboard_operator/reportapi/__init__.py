"""The endpoint SFU pods report their capacity to: token verification against the
cluster's JWKS, then the capacity feed's answer."""
