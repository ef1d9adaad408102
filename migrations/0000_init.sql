CREATE TABLE `consumer_state` (
	`stream` text PRIMARY KEY NOT NULL,
	`last_offset` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `messages` (
	`seq` integer PRIMARY KEY NOT NULL,
	`id` text NOT NULL,
	`room` text NOT NULL,
	`sender` text NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `messages_id_unique` ON `messages` (`id`);--> statement-breakpoint
CREATE INDEX `messages_room_seq` ON `messages` (`room`,`seq`);--> statement-breakpoint
CREATE INDEX `messages_created_at` ON `messages` (`created_at`);