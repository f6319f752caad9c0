"""Settings for a relay subprocess started by a ``postgres`` test: the test's own DB and vhost."""

import os

from tests.settings_pg import *  # noqa: F403

DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]  # noqa: F405
RABBITBUS = {
    **RABBITBUS,  # noqa: F405
    "OUTBOX": {"CLAIM_TIMEOUT": float(os.environ.get("RABBITBUS_TEST_CLAIM_TIMEOUT", "60"))},
}
