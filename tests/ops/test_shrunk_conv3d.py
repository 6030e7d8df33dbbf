"""torch.ops.cakes.shrunk_conv3d from Python (Debian's python3-torch, the same
LibTorch build as the C++ library) against per-group F.conv3d + torch.cat.

Run as: /usr/bin/python3 test_shrunk_conv3d.py <path to libcakes.so>
"""
import random
import sys
import unittest

import torch
import torch.nn.functional as F

LIB = sys.argv.pop(1) if len(sys.argv) > 1 else "build/libcakes.so"
torch.ops.load_library(LIB)
SHAPES = [(3, 3, 3), (1, 3, 3), (3, 1, 3), (3, 3, 1), (3, 1, 1), (1, 3, 1), (1, 1, 3), (1, 1, 1)]


def reference(x, weights, stride, dilation):
    outs = []
    for w in weights:
        if w.shape[0] == 0:
            continue
        pad = [dilation[a] * (w.shape[2 + a] - 1) // 2 for a in range(3)]
        outs.append(F.conv3d(x, w, None, stride, pad, dilation))
    return torch.cat(outs, 1)


class ShrunkConv3dFromPython(unittest.TestCase):
    def test_registered(self):
        self.assertTrue(hasattr(torch.ops.cakes, "shrunk_conv3d"))

    def test_random_cases_values_and_gradients(self):
        rng = random.Random(0)
        torch.manual_seed(0)
        for case in range(40):
            shapes = [SHAPES[case % 8]] + rng.sample(SHAPES, rng.randint(0, 2))
            shapes = list(dict.fromkeys(shapes))
            channels = [rng.randint(0, 4) for _ in shapes]
            channels[0] = max(channels[0], 1)
            n, c_in = rng.choice([1, 2, 3]), rng.randint(1, 4)
            size = [rng.randint(1, 6) for _ in range(3)]
            stride = [rng.choice([1, 2]) for _ in range(3)]
            dilation = [rng.choice([1, 1, 2]) for _ in range(3)]
            with self.subTest(case=case, shapes=shapes, channels=channels, stride=stride, dilation=dilation):
                x = torch.randn(n, c_in, *size, dtype=torch.float64)
                if case % 3 == 0:
                    x = x.transpose(2, 4).contiguous().transpose(2, 4)  # non-contiguous
                x.requires_grad_(True)
                ws = [torch.randn(c, c_in, *s, dtype=torch.float64, requires_grad=True)
                      for s, c in zip(shapes, channels)]
                y = torch.ops.cakes.shrunk_conv3d(x, ws, stride, dilation)
                x2 = x.detach().clone().requires_grad_(True)
                ws2 = [w.detach().clone().requires_grad_(True) for w in ws]
                y2 = reference(x2, ws2, stride, dilation)
                self.assertEqual(y.shape, y2.shape)
                torch.testing.assert_close(y, y2, rtol=1e-10, atol=1e-10)
                g = torch.randn_like(y2)
                y.backward(g)
                y2.backward(g)
                torch.testing.assert_close(x.grad, x2.grad, rtol=1e-10, atol=1e-10)
                for w, w2 in zip(ws, ws2):
                    if w.shape[0]:
                        torch.testing.assert_close(w.grad, w2.grad, rtol=1e-10, atol=1e-10)

    def test_gradcheck(self):
        torch.manual_seed(1)
        x = torch.randn(1, 2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
        ws = [torch.randn(2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(1, 2, 3, 1, 1, dtype=torch.float64, requires_grad=True)]
        fn = lambda x, a, b: torch.ops.cakes.shrunk_conv3d(x, [a, b], [1, 2, 1], [1, 1, 1])
        self.assertTrue(torch.autograd.gradcheck(fn, (x, *ws)))

    def test_float32(self):
        torch.manual_seed(2)
        x = torch.randn(2, 8, 4, 10, 10)
        ws = [torch.randn(5, 8, 3, 3, 3) * 0.1, torch.randn(3, 8, 3, 1, 1) * 0.1]
        y = torch.ops.cakes.shrunk_conv3d(x, ws, [1, 1, 1], [1, 1, 1])
        torch.testing.assert_close(y, reference(x, ws, [1, 1, 1], [1, 1, 1]), rtol=1e-4, atol=1e-4)

    def test_bad_arguments_raise(self):
        x = torch.randn(1, 4, 5, 5, 5)
        with self.assertRaisesRegex(RuntimeError, "input channels"):
            torch.ops.cakes.shrunk_conv3d(x, [torch.randn(2, 3, 3, 3, 3)], [1, 1, 1], [1, 1, 1])
        with self.assertRaisesRegex(RuntimeError, "rank 5"):
            torch.ops.cakes.shrunk_conv3d(x[0], [torch.randn(2, 4, 3, 3, 3)], [1, 1, 1], [1, 1, 1])
        with self.assertRaisesRegex(RuntimeError, "positive strides"):
            torch.ops.cakes.shrunk_conv3d(x, [torch.randn(2, 4, 3, 3, 3)], [1, 0, 1], [1, 1, 1])


if __name__ == "__main__":
    unittest.main(verbosity=1)
