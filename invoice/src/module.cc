// Module invoice: placeholder translation unit until the module's sources land.
