"""A seeded transaction log that looks nothing like the ULB file: the second dataset the pipeline is proven on.

It follows the simulator of the Fraud Detection Handbook (Le Borgne et al., "Reproducible Machine Learning for
Credit Card Fraud Detection - Practical Handbook", chapter 3.2, "Transaction data simulator"):
- customers with a location on a 100 x 100 grid, a mean amount (uniform in [5, 100], standard deviation half of it)
  and a mean number of transactions a day (uniform in [0, 4]);
- terminals on the same grid; a customer pays at the terminals within `radius` of home;
- each day, a customer makes Poisson(mean) transactions, at a time of day ~ N(noon, 20,000 s) within the day, of
  an amount ~ N(mean, std) (uniform in [0, 2 x mean] where that is negative), at one of their terminals;
- three fraud scenarios: (1) every amount above 220 is fraud; (2) each day two terminals are compromised and every
  transaction at them in the next 28 days is fraud; (3) each day three customers' cards are compromised and a third
  of their transactions in the next 14 days are fraud, their amounts multiplied by 5.

What this project adds, so that the log has the shape of a real acquirer's export: a transaction id, ISO-8601
timestamps, string ids, a merchant category and a country per terminal, a channel per transaction (card-not-present
fraud of scenario 3 is online more often than not), the age of the card in days, a string label ("fraud" /
"legit"), and a few percent of missing values (merchant category, country, card age).

Only NumPy: `fraud-pipeline simulate` writes the CSV; datasets/simulated/dataset.yaml is its spec.
"""

import csv
import dataclasses
import datetime
import gzip

import numpy as np

COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "card_age_days",
    "merchant_category",
    "channel",
    "country",
    "label",
)
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "travel",
    "electronics",
    "fashion",
    "pharmacy",
    "online_services",
)
MERCHANT_WEIGHTS = (0.30, 0.18, 0.12, 0.05, 0.08, 0.12, 0.08, 0.07)
COUNTRIES = ("BE", "FR", "NL", "DE", "LU", "GB", "US")
COUNTRY_WEIGHTS = (0.70, 0.10, 0.08, 0.06, 0.03, 0.02, 0.01)
CHANNELS = ("chip", "contactless", "online")
CHANNEL_WEIGHTS = (0.45, 0.35, 0.20)
# Compromised terminals and cards a day, per terminal and per customer (the handbook's 2 of 10,000 and 3 of 5,000).
TERMINAL_RATE = 2 / 10000
CARD_RATE = 3 / 5000
# Card-not-present fraud (scenario 3) goes online with this probability.
FRAUD_ONLINE = 0.7
# Shares of missing cells.
MISSING = {"merchant_category": 0.02, "country": 0.01, "card_age_days": 0.03}
START = datetime.datetime(2026, 4, 1, tzinfo=datetime.timezone.utc)
POSITIVE, NEGATIVE = "fraud", "legit"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The simulator's parameters (the handbook's defaults but for the size)."""

    days: int = 60
    customers: int = 1000
    terminals: int = 200
    seed: int = 0
    radius: float = 5.0
    start: datetime.datetime = START


def _customers(rng, n: int):
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    mean_amount = rng.uniform(5, 100, n)
    return x, y, mean_amount, mean_amount / 2, rng.uniform(0, 4, n)


def _reachable(cx, cy, tx, ty, radius: float) -> list[np.ndarray]:
    """Each customer's terminals: those within radius (the nearest one when none is)."""
    out = []
    for x, y in zip(cx, cy):
        distance = np.sqrt((tx - x) ** 2 + (ty - y) ** 2)
        near = np.flatnonzero(distance < radius)
        out.append(near if len(near) else np.array([int(np.argmin(distance))]))
    return out


def simulate(settings: Settings) -> dict[str, np.ndarray]:
    """The log's columns (COLUMNS) as arrays, ordered by time; the label is 1 for fraud.

    Raises:
      ValueError: a size below 1.
    """
    if min(settings.days, settings.customers, settings.terminals) < 1:
        raise ValueError("days, customers and terminals must each be at least 1")
    rng = np.random.default_rng(settings.seed)
    cx, cy, mean_amount, std_amount, per_day = _customers(rng, settings.customers)
    tx, ty = rng.uniform(0, 100, settings.terminals), rng.uniform(0, 100, settings.terminals)
    reachable = _reachable(cx, cy, tx, ty, settings.radius)
    terminal_category = rng.choice(len(MERCHANT_CATEGORIES), settings.terminals, p=MERCHANT_WEIGHTS)
    terminal_country = rng.choice(len(COUNTRIES), settings.terminals, p=COUNTRY_WEIGHTS)
    card_issued = rng.integers(30, 3000, settings.customers)  # days before the start

    counts = rng.poisson(np.repeat(per_day[:, None], settings.days, axis=1))  # [customers, days]
    customer = np.repeat(np.repeat(np.arange(settings.customers), settings.days), counts.ravel())
    day = np.repeat(np.tile(np.arange(settings.days), settings.customers), counts.ravel())
    n = len(customer)
    seconds = rng.normal(43200, 20000, n)
    # The handbook drops the times that fall outside the day.
    kept = (seconds >= 0) & (seconds < 86400)
    customer, day, seconds = customer[kept], day[kept], seconds[kept].astype(np.int64)
    n = len(customer)
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean_amount[customer[negative]])
    terminal = np.array([reachable[c][rng.integers(len(reachable[c]))] for c in customer], dtype=np.int64)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_WEIGHTS)

    fraud = amount > 220  # scenario 1
    terminals_a_day = settings.terminals * TERMINAL_RATE
    cards_a_day = settings.customers * CARD_RATE
    for d in range(settings.days):  # scenario 2: compromised terminals, for 28 days
        k = min(rng.poisson(terminals_a_day), settings.terminals)
        compromised = rng.choice(settings.terminals, k, replace=False)
        fraud |= np.isin(terminal, compromised) & (day >= d) & (day < d + 28)
    for d in range(settings.days):  # scenario 3: compromised cards, for 14 days
        cards = rng.choice(settings.customers, min(rng.poisson(cards_a_day), settings.customers), replace=False)
        window = np.flatnonzero(np.isin(customer, cards) & (day >= d) & (day < d + 14))
        hit = window[rng.random(len(window)) < 1 / 3]
        hit = hit[~fraud[hit]]
        amount[hit] *= 5
        fraud[hit] = True
        channel[hit] = np.where(rng.random(len(hit)) < FRAUD_ONLINE, CHANNELS.index("online"), channel[hit])

    order = np.lexsort((customer, seconds, day))
    moment = day[order] * 86400 + seconds[order]
    columns = {
        "transaction_id": np.array([f"tx{i:09d}" for i in range(n)], dtype=object),
        "tx_datetime": moment,
        "customer_id": customer[order],
        "terminal_id": terminal[order],
        "amount": np.round(amount[order], 2),
        "card_age_days": (card_issued[customer[order]] + day[order]).astype(float),
        "merchant_category": terminal_category[terminal[order]],
        "channel": channel[order],
        "country": terminal_country[terminal[order]],
        "label": fraud[order].astype(np.int8),
    }
    for name, share in MISSING.items():
        columns[f"{name}_missing"] = rng.random(n) < share
    return columns


def rows(columns: dict[str, np.ndarray], start: datetime.datetime = START):
    """The log's CSV rows (header first): ISO timestamps, string ids and labels, empty cells where missing."""
    yield list(COLUMNS)
    base = start.replace(tzinfo=None)
    for i in range(len(columns["label"])):
        when = base + datetime.timedelta(seconds=int(columns["tx_datetime"][i]))
        cells = {
            "transaction_id": columns["transaction_id"][i],
            "tx_datetime": when.isoformat(timespec="seconds") + "Z",
            "customer_id": f"C{columns['customer_id'][i]:06d}",
            "terminal_id": f"T{columns['terminal_id'][i]:05d}",
            "amount": f"{columns['amount'][i]:.2f}",
            "card_age_days": f"{columns['card_age_days'][i]:.0f}",
            "merchant_category": MERCHANT_CATEGORIES[columns["merchant_category"][i]],
            "channel": CHANNELS[columns["channel"][i]],
            "country": COUNTRIES[columns["country"][i]],
            "label": POSITIVE if columns["label"][i] else NEGATIVE,
        }
        for name in MISSING:
            if columns[f"{name}_missing"][i]:
                cells[name] = ""
        yield [cells[c] for c in COLUMNS]


def write(settings: Settings, path: str) -> dict:
    """Simulates and writes the log to `path` (gzip when it ends in .gz); returns what was written."""
    columns = simulate(settings)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        writer = csv.writer(f)
        for row in rows(columns, settings.start):
            writer.writerow(row)
    n = len(columns["label"])
    return {"rows": n, "frauds": int(columns["label"].sum()), "days": settings.days, "path": path}
