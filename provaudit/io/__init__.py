"""Readers and schema detection: any supported file -> batches of one normalized record table."""
from provaudit.io.formats import FORMATS, detect_format
from provaudit.io.reader import RECORD_SCHEMA, RecordReader, empty_records, read_records, read_table
from provaudit.io.schemas import SCHEMA_NAMES, SCHEMAS, known_schemas_line

__all__ = ["FORMATS", "RECORD_SCHEMA", "SCHEMAS", "SCHEMA_NAMES", "RecordReader", "detect_format",
           "empty_records", "known_schemas_line", "read_records", "read_table"]
