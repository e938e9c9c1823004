'use strict';
// The held-out split of the human drags, by user: two of the five Balabit
// users and every third SapiMouse user. trajectory's Go tests and training
// use the same rule (heldOutUser in eval_test.go).
function isHeldOutUser(source, user) {
  if (source === 'balabit') return user === 'user21' || user === 'user29';
  const n = parseInt(String(user).replace(/\D/g, ''), 10);
  return n % 3 === 0;
}
module.exports = { isHeldOutUser };
