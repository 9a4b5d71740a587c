-- Which consumer has handled which domain event: recorded in the consumer's own transaction,
-- so a redelivered event changes nothing.
CREATE TABLE consumed (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    consumed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
