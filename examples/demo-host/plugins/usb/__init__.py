"""The usb plugin. Its tables are usb_devices; its migrations live in migrations/."""
