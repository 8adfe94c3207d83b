"""Wire models of the client APIs cupola serves besides Responses, and their translation into
the runtime's request types."""
