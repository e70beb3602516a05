"""Verifies push webhooks with the Standard Webhooks reference library.

Reads a JSON object on stdin: secret (the whsec_ secret) and webhooks, a
list of {body, headers} as the test's receiver got them. Writes the list of
verified, parsed bodies. A signature that does not verify raises: a
non-zero exit.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

req = json.load(sys.stdin)
wh = Webhook(req["secret"])
json.dump([wh.verify(w["body"], w["headers"]) for w in req["webhooks"]], sys.stdout)
