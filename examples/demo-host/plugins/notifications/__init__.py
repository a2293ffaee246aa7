"""The notifications plugin. Its tables are notifications, notification_subscriptions; its migrations live in migrations/."""
