"""E-tickets: one signed ticket per purchased seat, shown as a QR code, scanned once."""
