-- Writes Tandem has started but not seen answered (see `Link::pending`): a JSON object
-- keyed by mapping key, like `shadow`. Links stored before this step have none.
ALTER TABLE links ADD COLUMN pending TEXT NOT NULL DEFAULT '{}';
