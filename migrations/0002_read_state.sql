CREATE TABLE `room_heads` (
	`room` text PRIMARY KEY NOT NULL,
	`head` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `room_members` (
	`user` text NOT NULL,
	`room` text NOT NULL,
	`last_read` integer NOT NULL,
	PRIMARY KEY(`user`, `room`)
);
--> statement-breakpoint
-- Summaries of what an existing database already holds (an upgraded node), so that heads and the
-- rooms people posted in are right from the first start of this version.
INSERT INTO `room_heads` (`room`, `head`) SELECT `room`, max(`seq`) FROM `messages` GROUP BY `room`;--> statement-breakpoint
INSERT INTO `room_members` (`user`, `room`, `last_read`) SELECT DISTINCT `sender`, `room`, 0 FROM `messages`;
