// Entry point: builds a cart and checks it out. `main` is exported on the
// global object so the test runner can call it after loading the bundle.

import { checkout } from "./cart.js";

function placeOrder(owner) {
  const cart = { owner, items: [{ price: 3.5, quantity: 0 }] };
  return checkout(cart);
}

globalThis.pulsetraceFixtureMain = function main() {
  return placeOrder("ada");
};
