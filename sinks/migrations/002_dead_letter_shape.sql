-- Dead letters keep the payload's size and a keyed digest beside its structure (in payload),
-- never its values: personal data stays only in the source topic, under its retention.
ALTER TABLE {db}.dead_letters
    ADD COLUMN IF NOT EXISTS payload_bytes UInt32 DEFAULT 0 AFTER payload,
    ADD COLUMN IF NOT EXISTS digest String DEFAULT '' AFTER payload_bytes;

-- Rows written before this migration hold redacted payloads and details that may still carry
-- names: keep where they are and why, drop what they said.
ALTER TABLE {db}.dead_letters UPDATE payload = '', detail = '', event_id = '', source = ''
WHERE digest = ''
SETTINGS mutations_sync = 2;
