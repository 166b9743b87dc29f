#!/usr/bin/env python3
"""Generates the guardrails corpus (tests/guardrails_corpus.jsonl) and its held-out part
(tests/guardrails_holdout.jsonl) with a fixed seed.

Every secret here is random and fake: keys of the right shape, Luhn-valid card numbers,
mod-97-valid IBANs and SSNs in valid ranges, none of them issued to anyone. Each line is
{"text": ..., "rules": [...]}: the built-in rules that must fire on the text (empty for a
negative). About 30% of the lines, drawn at random, go to the held-out file, which is
written once, before any rule is tuned, and not read while tuning.

Run from the repository root: python3 tests/gen_guardrails_corpus.py
"""

import base64
import json
import random
import string

SEED = 20240612
rng = random.Random(SEED)

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPPER_DIGITS = string.ascii_uppercase + string.digits
B32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"


def rand(chars, n):
    return "".join(rng.choice(chars) for _ in range(n))


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---------------------------------------------------------------- secrets


def openai_key():
    kind = rng.choice(["legacy", "proj", "proj", "svcacct"])
    if kind == "legacy":
        return "sk-" + rand(ALNUM, 20) + "T3BlbkFJ" + rand(ALNUM, 20)
    body = rand(URLSAFE, 74) + "T3BlbkFJ" + rand(URLSAFE, 74)
    # a key's last character is never a dash in practice; keep the shape realistic
    body = body[:-1] + rng.choice(ALNUM)
    return "sk-" + kind + "-" + body


def anthropic_key():
    kind = rng.choice(["api03", "api03", "admin01"])
    return "sk-ant-" + kind + "-" + rand(URLSAFE, 93) + "AA"


def aws_key():
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + rand(B32, 16)


def aws_secret():
    return rand(ALNUM + "+/", 40)


def google_key():
    return "AIza" + rand(URLSAFE, 34) + rng.choice(ALNUM)


def github_token():
    if rng.random() < 0.25:
        return "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59)
    return rng.choice(["ghp", "ghp", "gho", "ghu", "ghs", "ghr"]) + "_" + rand(ALNUM, 36)


def slack_token():
    kind = rng.choice(["b", "p", "a", "s", "r"])
    if kind == "b":
        return "xoxb-%s-%s-%s" % (rand(string.digits, 12), rand(string.digits, 13), rand(ALNUM, 24))
    if kind == "p":
        return "xoxp-%s-%s-%s-%s" % (
            rand(string.digits, 12),
            rand(string.digits, 12),
            rand(string.digits, 13),
            rand(HEX, 32),
        )
    if kind == "a":
        return "xoxa-2-%s-%s-%s" % (rand(string.digits, 12), rand(string.digits, 13), rand(HEX, 32))
    return "xox%s-%s-%s-%s" % (kind, rand(string.digits, 11), rand(string.digits, 12), rand(ALNUM, 24))


def stripe_key():
    return rng.choice(["sk_live_", "sk_live_", "rk_live_"]) + rand(ALNUM, rng.choice([24, 34, 99]))


def hf_token():
    return "hf_" + rand(string.ascii_letters, 34)


def pem_block(kind):
    nbytes = {"RSA": 608, "EC": 121, "OPENSSH": 400, "": 1216, "ENCRYPTED": 1298}[kind]
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(nbytes))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    label = (kind + " " if kind else "") + "PRIVATE KEY"
    return "-----BEGIN %s-----\n%s\n-----END %s-----" % (label, "\n".join(lines), label)


def private_key():
    return pem_block(rng.choice(["RSA", "EC", "OPENSSH", "", "ENCRYPTED"]))


def jwt():
    alg = rng.choice(["HS256", "RS256", "ES256", "HS512"])
    header = {"alg": alg, "typ": "JWT"}
    if rng.random() < 0.4:
        header["kid"] = rand(HEX, 16)
    payload = {
        "sub": str(rng.randint(10**6, 10**9)),
        "iat": rng.randint(1_600_000_000, 1_750_000_000),
        "exp": rng.randint(1_750_000_000, 1_800_000_000),
    }
    if rng.random() < 0.5:
        payload["scope"] = rng.choice(["read:all", "admin", "openid profile email"])
    siglen = {"HS256": 32, "RS256": 256, "ES256": 64, "HS512": 64}[alg]
    sig = bytes(rng.getrandbits(8) for _ in range(siglen))
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return h + "." + p + "." + b64url(sig)


# ---------------------------------------------------------------- pii


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rng.randint(0, 9))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    check = (10 - total % 10) % 10
    return "".join(map(str, digits)) + str(check)


def luhn_ok(number):
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_number():
    brand = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover", "jcb"])
    prefix, length = {
        "visa": ("4", 16),
        "mc": (str(rng.randint(51, 55)), 16),
        "mc2": (str(rng.randint(2221, 2720)), 16),
        "amex": (rng.choice(["34", "37"]), 15),
        "discover": ("6011", 16),
        "jcb": (str(rng.randint(3528, 3589)), 16),
    }[brand]
    return luhn_complete(prefix, length)


def format_card(n):
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain":
        return n
    sep = " " if style == "space" else "-"
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i : i + 4] for i in range(0, len(n), 4))


def bad_luhn_card():
    n = card_number()
    last = (int(n[-1]) + rng.randint(1, 9)) % 10
    return n[:-1] + str(last)


IBAN_FORMATS = {
    "DE": ("n", 18),
    "GB": ("GB", 18),
    "FR": ("n", 23),
    "NL": ("NL", 14),
    "ES": ("n", 20),
    "IT": ("IT", 23),
    "CH": ("n", 17),
    "BE": ("n", 12),
    "AT": ("n", 16),
    "PL": ("n", 24),
}


def iban_check(country, bban):
    rearranged = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in rearranged)
    return "%02d" % (98 - int(num) % 97)


def iban_bban(country):
    kind, length = IBAN_FORMATS[country]
    if kind == "GB":
        return rand(string.ascii_uppercase, 4) + rand(string.digits, 14)
    if kind == "NL":
        return rand(string.ascii_uppercase, 4) + rand(string.digits, 10)
    if kind == "IT":
        return rand(string.ascii_uppercase, 1) + rand(string.digits, 10) + rand(UPPER_DIGITS, 12)
    return rand(string.digits, length)


def iban(valid=True):
    country = rng.choice(list(IBAN_FORMATS))
    bban = iban_bban(country)
    check = iban_check(country, bban)
    if not valid:
        check = "%02d" % ((int(check) + rng.randint(1, 40)) % 97 + 2)
        if check == iban_check(country, bban):
            check = "%02d" % ((int(check) + 1) % 97 + 2)
    raw = country + check + bban
    if rng.random() < 0.5:
        return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))
    return raw


FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"]
LAST = ["smith", "jones", "nguyen", "garcia", "muller", "rossi", "tanaka", "kowalski", "dubois"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk", "acme.io",
           "students.uni-example.edu", "example.de", "shop.example.com.au"]


def email():
    style = rng.choice(["dot", "plain", "plus", "under", "digits"])
    f, l = rng.choice(FIRST), rng.choice(LAST)
    local = {
        "dot": f + "." + l,
        "plain": f,
        "plus": f + "+" + rng.choice(["news", "billing", "test"]),
        "under": f + "_" + l,
        "digits": f + str(rng.randint(1, 999)),
    }[style]
    if rng.random() < 0.2:
        local = local.capitalize()
    return local + "@" + rng.choice(DOMAINS)


def phone():
    style = rng.choice(["us_paren", "us_dash", "us_dot", "us_intl", "uk", "de", "fr", "jp", "e164"])
    d = lambda n: rand(string.digits, n)
    area = str(rng.randint(2, 9)) + d(2)
    exch = str(rng.randint(2, 9)) + d(2)
    return {
        "us_paren": "(%s) %s-%s" % (area, exch, d(4)),
        "us_dash": "%s-%s-%s" % (area, exch, d(4)),
        "us_dot": "%s.%s.%s" % (area, exch, d(4)),
        "us_intl": "+1 %s %s %s" % (area, exch, d(4)),
        "uk": "+44 20 %s %s" % (d(4), d(4)),
        "de": "+49 30 %s" % d(8),
        "fr": "+33 1 %s %s %s %s" % (d(2), d(2), d(2), d(2)),
        "jp": "+81 3-%s-%s" % (d(4), d(4)),
        "e164": "+1%s%s%s" % (area, exch, d(4)),
    }[style]


def ssn():
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return "%03d-%02d-%04d" % (area, rng.randint(1, 99), rng.randint(1, 9999))


def bad_ssn():
    kind = rng.choice(["area0", "area666", "area9", "group0", "serial0"])
    area, group, serial = rng.randint(1, 665), rng.randint(1, 99), rng.randint(1, 9999)
    if kind == "area0":
        area = 0
    elif kind == "area666":
        area = 666
    elif kind == "area9":
        area = rng.randint(900, 999)
    elif kind == "group0":
        group = 0
    else:
        serial = 0
    return "%03d-%02d-%04d" % (area, group, serial)


# ---------------------------------------------------------------- contexts

SECRET_CONTEXTS = {
    "openai_key": [
        'OPENAI_API_KEY="{}"',
        "client = OpenAI(api_key='{}')",
        "curl https://api.openai.com/v1/models -H \"Authorization: Bearer {}\"",
        '{{"provider": "openai", "api_key": "{}", "timeout": 30}}',
        "hey, my key {} stopped working after I rotated it, any idea why?",
        "2024-05-01T10:22:13Z WARN auth failed for token={} status=401",
        "export OPENAI_API_KEY={}",
    ],
    "anthropic_key": [
        "ANTHROPIC_API_KEY={}",
        "client = anthropic.Anthropic(api_key=\"{}\")",
        "curl https://api.anthropic.com/v1/messages -H 'x-api-key: {}'",
        '{{"anthropic": {{"key": "{}"}}}}',
        "I pasted {} into the settings page but it says invalid",
    ],
    "aws_access_key": [
        "aws_access_key_id = {}",
        "export AWS_ACCESS_KEY_ID={}",
        '{{"AccessKeyId": "{}", "Expiration": "2024-06-01T00:00:00Z"}}',
        "found creds in the repo: {} (committed last week)",
        "s3 upload failed: InvalidAccessKeyId for key {} in bucket logs-prod",
    ],
    "google_api_key": [
        "GOOGLE_API_KEY={}",
        "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={}",
        '{{"gemini": {{"apiKey": "{}"}}}}',
        "const firebaseConfig = {{ apiKey: \"{}\", authDomain: \"demo.firebaseapp.com\" }};",
    ],
    "github_token": [
        "GITHUB_TOKEN={}",
        "git clone https://{}@github.com/acme/private-repo.git",
        "curl -H \"Authorization: token {}\" https://api.github.com/user",
        "- name: checkout\n  env:\n    GH_TOKEN: {}",
        "can you use {} to open the PR for me",
    ],
    "slack_token": [
        "SLACK_BOT_TOKEN={}",
        "slack_client = WebClient(token=\"{}\")",
        '{{"ok": true, "access_token": "{}", "team": {{"name": "acme"}}}}',
        "bot token is {} -- don't share it",
    ],
    "stripe_key": [
        "STRIPE_SECRET_KEY={}",
        "stripe.api_key = \"{}\"",
        "curl https://api.stripe.com/v1/charges -u {}:",
        "the live key {} is in the old .env, rotate it",
    ],
    "huggingface_token": [
        "HF_TOKEN={}",
        "huggingface-cli login --token {}",
        "from huggingface_hub import login; login(token=\"{}\")",
        "my hf token {} gives 403 on the gated model",
    ],
    "private_key": [
        "{}",
        "here is the deploy key:\n{}\nplease add it to the server",
        "cat ~/.ssh/id_rsa\n{}",
        "key.pem contents:\n\n{}\n",
    ],
    "jwt": [
        "Authorization: Bearer {}",
        '{{"access_token": "{}", "token_type": "Bearer", "expires_in": 3600}}',
        "https://app.example.com/callback#id_token={}&state=xyz",
        "2024-05-01 12:00:01 DEBUG session cookie jwt={} path=/",
        "why does this token fail to verify? {}",
    ],
}

PII_CONTEXTS = {
    "credit_card": [
        "Card number: {}",
        "please charge {} exp 04/27",
        '{{"payment": {{"card": "{}", "exp_month": 4}}}}',
        "my visa is {}, can you update billing",
        "2024-05-01 12:00:00 INFO payment attempt card={} amount=49.00",
    ],
    "iban": [
        "IBAN: {}",
        "Please transfer the deposit to {} by Friday.",
        '{{"beneficiary": "Acme GmbH", "iban": "{}"}}',
        "Bank details - account {} (reference INV-2024-118)",
    ],
    "email": [
        "Contact: {}",
        "reach me at {} if anything breaks",
        '{{"user": {{"email": "{}", "role": "admin"}}}}',
        "2024-05-01 12:00:00 INFO password reset sent to {}",
        "mailto:{}?subject=Hello",
        "From: Jane <{}>",
    ],
    "phone": [
        "Call me at {}.",
        "phone: {}",
        '{{"contact": {{"phone": "{}"}}}}',
        "Support line {} (Mon-Fri)",
        "you can text {} after 6pm",
    ],
    "us_ssn": [
        "SSN: {}",
        "my social is {} for the tax form",
        '{{"applicant": {{"ssn": "{}"}}}}',
        "Employee record 4471 - ssn {} - dept 12",
    ],
}

GENERATORS = {
    "openai_key": openai_key,
    "anthropic_key": anthropic_key,
    "aws_access_key": aws_key,
    "google_api_key": google_key,
    "github_token": github_token,
    "slack_token": slack_token,
    "stripe_key": stripe_key,
    "huggingface_token": hf_token,
    "private_key": private_key,
    "jwt": jwt,
    "credit_card": lambda: format_card(card_number()),
    "iban": iban,
    "email": email,
    "phone": phone,
    "us_ssn": ssn,
}


def positives():
    out = []
    contexts = dict(SECRET_CONTEXTS)
    contexts.update(PII_CONTEXTS)
    for rule, templates in contexts.items():
        for _ in range(16 if rule in SECRET_CONTEXTS else 18):
            out.append({"text": rng.choice(templates).format(GENERATORS[rule]()), "rules": [rule]})
    # AWS key with its secret beside it
    for _ in range(3):
        out.append({
            "text": "[default]\naws_access_key_id = %s\naws_secret_access_key = %s" % (aws_key(), aws_secret()),
            "rules": ["aws_access_key"],
        })
    # lines with several findings
    for _ in range(10):
        text = "Name: %s %s\nEmail: %s\nPhone: %s\nCard: %s" % (
            rng.choice(FIRST).capitalize(), rng.choice(LAST).capitalize(), email(), phone(),
            format_card(card_number()))
        out.append({"text": text, "rules": ["credit_card", "email", "phone"]})
    for _ in range(6):
        text = "OPENAI_API_KEY=%s\nANTHROPIC_API_KEY=%s\nHF_TOKEN=%s" % (openai_key(), anthropic_key(), hf_token())
        out.append({"text": text, "rules": ["anthropic_key", "huggingface_token", "openai_key"]})
    for _ in range(4):
        text = "ticket from %s: my SSN %s was shown on the invoice page with IBAN %s" % (email(), ssn(), iban())
        out.append({"text": text, "rules": ["email", "iban", "us_ssn"]})
    return out


PROSE = [
    "Could you ask-me before merging the task-list changes?",
    "The risk-free rate is about 4.5% this year, per the 2024-03-15 report.",
    "We use sk-learn style estimators; see the scikit-learn docs for details.",
    "Hello world. The quick brown fox jumps over the lazy dog.",
    "Version 2.14.0-rc.1 fixes the regression from v1.9.3 (released 2023-11-02).",
    "The meeting moved to 10:30 on 15/03/2024; bring the Q3 numbers.",
    "Price: $1,299.99 (was $1,499.00), shipping 12.50 EUR.",
    "Order #A-1234567 shipped on March 3, 2024 via tracking 1Z999AA10123456784.",
    "I tried the desk-top app but the task-bar icon disappears.",
    "Latency p99 went from 120ms to 85ms after the 3.2.1 upgrade.",
    "Use your own key: OPENAI_API_KEY=sk-... (never commit it).",
    "Set AWS_ACCESS_KEY_ID=AKIAXXXX and AWS_SECRET_ACCESS_KEY=... in your shell.",
    "Replace <YOUR_API_KEY> with the key from the dashboard.",
    "token: ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "api_key = \"sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"",
    "The example key in the AWS docs is AKIAIOSFODNN7EXAMPLE.",
    "Set STRIPE_KEY=sk_live_... in production and sk_test_... elsewhere.",
    "Anthropic keys start with sk-ant- followed by the key type.",
    "Slack bot tokens look like xoxb-... and user tokens like xoxp-...",
    "hf_... tokens are read-only by default.",
    "-----BEGIN PUBLIC KEY----- is fine to share, the private one is not.",
    "The build number is 20240315123456 and the job id is 8847392015.",
    "Call extension 4421 or room 3.14 in building 7.",
    "IP 192.168.100.200 and 10.0.0.1 are internal; port 8080.",
    "ISBN 978-3-16-148410-0 is on the back cover.",
    "The invoice total is 1 234 567,89 EUR for 2023-12-31.",
    "We shipped 16 000 units in Q1 and 21 500 in Q2.",
    "Coordinates 52.5200, 13.4050 point to Berlin.",
    "Run `npm install left-pad@1.3.0` and then `pip install requests==2.31.0`.",
    "See RFC 7519 section 4.1 for registered claim names like iss and exp.",
    "The patient was admitted at 23:15 and discharged 2024-04-02.",
    "Dial 0800 123 in Germany for the hotline menu (option 3).",
    "Matrix dims are 1024x768x3 and the batch is 64.",
    "The SKU is SK-2291-BLK-XL and the size is XL.",
    "ssh-keygen -t ed25519 -C comment writes ~/.ssh/id_ed25519 and the .pub file.",
    "user@localhost is not a real address, neither is admin@ or @handle.",
    "Follow @acme_support on social media for updates.",
    "Temperature 21.5C, humidity 40%, pressure 1013 hPa.",
    "The ticket ASIA-PAC-2024 covers the regional rollout.",
    "AIza is how Google API keys begin, but this sentence has none.",
]


def not_luhn(number):
    while luhn_ok(number):
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return number


def uuid():
    h = rand(HEX, 32)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def negatives():
    out = [{"text": t, "rules": []} for t in PROSE]
    makers = [
        lambda: "request_id=%s trace=%s" % (uuid(), uuid()),
        lambda: "commit %s\nAuthor: build bot" % rand(HEX, 40),
        lambda: "git checkout %s && git log -1" % rand(HEX, 40),
        lambda: "sha256: %s" % rand(HEX, 64),
        lambda: "md5sum: %s  release.tar.gz" % rand(HEX, 32),
        lambda: "image: registry.example.com/app@sha256:%s" % rand(HEX, 64),
        lambda: "data:image/png;base64,%s" % base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(60, 200)))).decode(),
        lambda: "\"integrity\": \"sha512-%s\"" % base64.b64encode(bytes(rng.getrandbits(8) for _ in range(64))).decode(),
        lambda: "blob %s" % b64url(bytes(rng.getrandbits(8) for _ in range(48))),
        lambda: "card on file ends in %s, number %s was declined" % (rand(string.digits, 4), bad_luhn_card()),
        lambda: "reference %s" % format_card(bad_luhn_card()),
        lambda: "account number %s" % not_luhn(rand(string.digits, 16)),
        lambda: "IBAN (invalid checksum): %s" % iban(valid=False),
        lambda: "SSN field must not be %s" % bad_ssn(),
        lambda: "order number %s placed on 2024-%02d-%02d" % (rand(string.digits, 12), rng.randint(1, 12), rng.randint(1, 28)),
        lambda: "version %d.%d.%d build %d" % (rng.randint(0, 20), rng.randint(0, 99), rng.randint(0, 999), rng.randint(1000, 99999)),
        lambda: "timestamp %d ms, epoch %d" % (rng.randint(1_600_000_000_000, 1_800_000_000_000), rng.randint(1_600_000_000, 1_800_000_000)),
        lambda: "color #%s and #%s" % (rand(HEX, 6), rand(HEX, 6)),
        lambda: "pod api-%s-%s restarted" % (rand("abcdef0123456789", 10), rand(string.ascii_lowercase + string.digits, 5)),
        lambda: "session=%s; Path=/; HttpOnly" % rand(ALNUM, 32),
        lambda: "the word %s-%s is not a key" % (rng.choice(["ask", "task", "desk", "risk", "mask", "husk"]), rng.choice(["me", "list", "force", "free", "based", "top"])),
        lambda: "tokens: %s.%s.%s" % (rand(string.ascii_lowercase, 6), rand(string.ascii_lowercase, 6), rand(string.ascii_lowercase, 6)),
        lambda: "price %d.%02d USD x %d = %d.%02d" % (rng.randint(1, 999), rng.randint(0, 99), rng.randint(1, 9), rng.randint(1, 9999), rng.randint(0, 99)),
        lambda: "date range %02d/%02d/%d - %02d/%02d/%d" % (rng.randint(1, 28), rng.randint(1, 12), rng.randint(2000, 2030), rng.randint(1, 28), rng.randint(1, 12), rng.randint(2000, 2030)),
        lambda: "eyJ%s.%s.%s" % (rand(URLSAFE, 20), rand(URLSAFE, 30), rand(URLSAFE, 43)),
        lambda: "placeholder %s" % rng.choice(["sk-xxxxxxxxxxxxxxxxxxxxxxxx", "sk-ant-xxxxxxxx", "AKIA................", "ghp_<token>", "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "xoxb-your-token-here", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"]),
    ]
    for _ in range(5):
        for make in makers:
            out.append({"text": make(), "rules": []})
    return out


def main():
    rows = positives() + negatives()
    for row in rows:
        row["rules"] = sorted(set(row["rules"]))
    rng.shuffle(rows)
    cut = int(len(rows) * 0.3)
    holdout, corpus = rows[:cut], rows[cut:]
    for path, part in (("tests/guardrails_corpus.jsonl", corpus), ("tests/guardrails_holdout.jsonl", holdout)):
        with open(path, "w") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(path, len(part))


if __name__ == "__main__":
    main()
