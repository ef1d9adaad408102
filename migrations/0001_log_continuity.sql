CREATE TABLE `log_gaps` (
	`from_offset` integer PRIMARY KEY NOT NULL,
	`to_offset` integer NOT NULL,
	`detected_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `consumer_state` ADD `epoch` text;--> statement-breakpoint
ALTER TABLE `consumer_state` ADD `last_hash` text;