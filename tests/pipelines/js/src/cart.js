// The shopping cart. `checkout` throws for an empty cart: the error the tests
// symbolicate.

import { cartTotal } from "./prices.js";

export class CartError extends Error {
  constructor(message) {
    super(message);
    this.name = "CartError";
  }
}

export function checkout(cart) {
  const items = cart.items.filter((item) => item.quantity > 0);
  if (items.length === 0) {
    throw new CartError(`cannot check out an empty cart for ${cart.owner}`);
  }
  return { owner: cart.owner, total: cartTotal(items) };
}
