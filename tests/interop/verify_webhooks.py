"""Verifies webhook deliveries with an implementation of Standard Webhooks nobody here wrote: the
`standardwebhooks` package from PyPI (pinned in scripts/test.sh).

    python verify_webhooks.py FILE

FILE is JSON: {"secret": "whsec_…", "deliveries": [{"headers": {name: value}, "body": "…"}]}, the
requests a receiver recorded, bodies as the exact text received. Every delivery must verify
(signature and timestamp tolerance), and the same delivery with its body changed by one character
must be rejected. Prints one line per delivery: its webhook-id and the event's type; exits 1 on the
first failure.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        recorded = json.load(f)
    webhook = Webhook(recorded["secret"])
    deliveries = recorded["deliveries"]
    if not deliveries:
        print("no deliveries to verify", file=sys.stderr)
        return 1
    for delivery in deliveries:
        headers, body = delivery["headers"], delivery["body"]
        try:
            event = webhook.verify(body, headers)
        except WebhookVerificationError as err:
            print(f"REJECTED {headers.get('webhook-id')}: {err}", file=sys.stderr)
            return 1
        tampered = body.replace('"video_id"', '"video_iD"', 1)
        if tampered == body:
            tampered = body + " "
        try:
            webhook.verify(tampered, headers)
        except WebhookVerificationError:
            pass
        else:
            print(f"ACCEPTED A TAMPERED BODY {headers.get('webhook-id')}", file=sys.stderr)
            return 1
        print(f"verified {headers['webhook-id']} {event['type']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
