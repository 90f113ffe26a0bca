"""The contract's Avro schemas, their catalog of ids, and the wire-format codec."""

from booster.schemas.catalog import CATALOG, TopicSpec, spec_for
from booster.schemas.codec import Codec, codec

__all__ = ["CATALOG", "Codec", "TopicSpec", "codec", "spec_for"]
