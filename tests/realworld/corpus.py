"""The real-world corpus: notebooks in the style of public tutorials, written as plain Jupyter
notebooks (no nbflow in them). ``python -m tests.realworld.corpus`` writes them to
``tests/realworld/notebooks/`` (data they read is in ``notebooks/data/``); the committed
files are what the tests read.

Between them they cover: redefinitions, ``inplace=True``, estimators fitted in
one cell and read in others, plotting in many cells, ``%matplotlib inline``,
``%timeit``/``%%time``, ``display``, helper functions and classes defined in
cells, global random state, method-call mutations, a shipped CSV file and
top-level ``await``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"

CORPUS: dict[str, list[str]] = {}

CORPUS["numpy_basics"] = [
    "# NumPy basics: arrays, broadcasting and vectorised maths",
    "import numpy as np\n%matplotlib inline\nimport matplotlib.pyplot as plt",
    "a = np.arange(12)\na",
    "a = a.reshape(3, 4)\na.shape",
    "a = a * 2  # redefinition: the doubled array replaces the original\na.sum()",
    "col_means = a.mean(axis=0)\nrow_max = a.max(axis=1)\ndisplay(col_means, row_max)",
    "centered = a - col_means  # broadcasting\ncentered",
    "(n**2 for n in range(12))",
    "squares = [n**2 for n in range(12)]\nevens = [s for s in squares if s % 2 == 0]",
    "def normalise(x):\n    return (x - x.mean()) / x.std()\n\nz = normalise(a.astype(float))\nz.round(3)",
    "%timeit -n 5 -r 2 normalise(a.astype(float))",
    "x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.sin(x))\nplt.title('sine')",
    "plt.plot(x, np.cos(x), 'r--')\nplt.show()",
    "mask = a > 10\nselected = a[mask]\nselected",
    "a[a > 18] = 0  # in place, by assignment\na",
    "stats = {'min': int(a.min()), 'max': int(a.max()), 'mean': float(a.mean())}\nstats",
]

CORPUS["pandas_cleaning"] = [
    "# Cleaning a messy table with pandas",
    "import numpy as np\nimport pandas as pd",
    "rng = np.random.default_rng(42)\nraw = pd.DataFrame({\n    'Name': ['Ann', 'Bob', None, 'Dee', 'Eve', 'Fay', 'Gus', None],\n    'Age ': [34, np.nan, 29, 41, np.nan, 23, 38, 30],\n    'City': ['Oslo', 'Rome', 'Lima', 'Oslo', 'Rome', 'Lima', 'Oslo', 'Rome'],\n    'Score': rng.normal(70, 10, 8).round(1),\n})\nraw.head()",
    "df = raw.copy()\ndf.rename(columns={'Age ': 'age', 'Name': 'name', 'City': 'city', 'Score': 'score'}, inplace=True)\ndf.columns.tolist()",
    "df.dropna(subset=['name'], inplace=True)\nlen(df)",
    "df['age'] = df['age'].fillna(df['age'].median())\ndf",
    "df.sort_values('score', ascending=False, inplace=True)\ndisplay(df.head(3))",
    "df.reset_index(drop=True, inplace=True)\ndf.index.tolist()",
    "by_city = df.groupby('city')['score'].agg(['mean', 'count'])\nby_city",
    "def grade(score):\n    if score >= 75:\n        return 'A'\n    if score >= 65:\n        return 'B'\n    return 'C'\n\ndf['grade'] = df['score'].apply(grade)\ndf[['name', 'grade']]",
    "counts = df['grade'].value_counts().sort_index()\ncounts",
    "df = df[df['age'] < 40]  # redefinition: a filtered frame\nsummary = df.describe()\nsummary",
    "%timeit -n 3 -r 2 df.groupby('city')['score'].mean()",
    "top = df.nlargest(2, 'score')['name'].tolist()\ntop",
]

CORPUS["matplotlib_gallery"] = [
    "# A small matplotlib gallery",
    "%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt",
    "np.random.seed(0)  # global random state, as many tutorials use\ndata = np.random.randn(500)",
    "plt.hist(data, bins=30, color='steelblue')\nplt.title('histogram')\nplt.show()",
    "fig, axes = plt.subplots(1, 2, figsize=(8, 3))\naxes[0].plot(np.cumsum(data))\naxes[1].boxplot(data)\nfig.tight_layout()",
    "t = np.arange(0.0, 2.0, 0.01)\ns = 1 + np.sin(2 * np.pi * t)\nfig, ax = plt.subplots()\nax.plot(t, s)\nax.set(xlabel='time (s)', ylabel='voltage (mV)', title='About as simple as it gets')\nax.grid()",
    "more = np.random.randn(200)  # draws continue from the same global state\nplt.scatter(data[:200], more, s=5)",
    "categories = ['a', 'b', 'c', 'd']\nvalues = [data[data > 1].size, data[data < -1].size, more[more > 0].size, more[more < 0].size]\nplt.bar(categories, values)",
    "cumulative = np.cumsum(values)\ncumulative",
    "image = np.outer(np.sin(t[:50]), np.cos(t[:50]))\nplt.imshow(image, cmap='viridis')\nplt.colorbar()",
    "image_stats = (float(image.min()), float(image.max()))\nimage_stats",
]

CORPUS["iris_classification"] = [
    "# Classifying iris flowers with scikit-learn",
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\nfrom sklearn.datasets import load_iris\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.neighbors import KNeighborsClassifier\nfrom sklearn.tree import DecisionTreeClassifier\nfrom sklearn.metrics import accuracy_score, confusion_matrix\n%matplotlib inline",
    "iris = load_iris(as_frame=True)\nX = iris.data\ny = iris.target\nX.head()",
    "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)\nX_train.shape, X_test.shape",
    "knn = KNeighborsClassifier(n_neighbors=5)\nknn.fit(X_train, y_train)",
    "knn_pred = knn.predict(X_test)\nknn_acc = accuracy_score(y_test, knn_pred)\nknn_acc",
    "tree = DecisionTreeClassifier(max_depth=3, random_state=0)\ntree.fit(X_train, y_train)\ntree_acc = tree.score(X_test, y_test)",
    "cm = confusion_matrix(y_test, knn_pred)\nplt.imshow(cm, cmap='Blues')\nplt.title('KNN confusion matrix')",
    "importances = pd.Series(tree.feature_importances_, index=X.columns).sort_values()\nimportances.plot.barh()",
    "scores = {}\nfor k in range(1, 8):\n    model = KNeighborsClassifier(n_neighbors=k).fit(X_train, y_train)\n    scores[k] = model.score(X_test, y_test)\nbest_k = max(scores, key=scores.get)",
    "knn.set_params(n_neighbors=best_k)\nknn.fit(X_train, y_train)  # the estimator of cell 5, refitted in place\nfinal_acc = knn.score(X_test, y_test)",
    "plt.plot(list(scores), list(scores.values()), marker='o')\nplt.xlabel('k')",
]

CORPUS["regression_pipeline"] = [
    "# A regression pipeline with grid search",
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\nfrom sklearn.datasets import load_diabetes\nfrom sklearn.linear_model import Ridge\nfrom sklearn.model_selection import GridSearchCV, train_test_split\nfrom sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n%matplotlib inline",
    "data = load_diabetes(as_frame=True)\ndf = data.frame\ndf.describe().T.head()",
    "X = df.drop(columns='target')\ny = df['target']\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
    "pipe = make_pipeline(StandardScaler(), Ridge())\ngrid = GridSearchCV(pipe, {'ridge__alpha': [0.1, 1.0, 10.0, 100.0]}, cv=5)",
    "grid.fit(X_train, y_train)  # fitted here, read by the cells below",
    "best_alpha = grid.best_params_['ridge__alpha']\ncv_score = round(grid.best_score_, 6)\nbest_alpha, cv_score",
    "test_r2 = grid.score(X_test, y_test)\ntest_r2",
    "coefs = pd.Series(grid.best_estimator_[-1].coef_, index=X.columns)\ncoefs.sort_values().plot.bar()",
    "residuals = y_test - grid.predict(X_test)\nplt.scatter(grid.predict(X_test), residuals, s=8)\nplt.axhline(0, color='k')",
    "%%time\nalphas = np.logspace(-2, 3, 12)\npath = [Ridge(alpha=a).fit(X_train, y_train).coef_ for a in alphas]",
    "path = np.array(path)\nplt.semilogx(alphas, path)\nplt.title('ridge path')",
]

CORPUS["seaborn_tips"] = [
    "# Exploring a tips-like table with seaborn",
    "import numpy as np\nimport pandas as pd\nimport seaborn as sns\nimport matplotlib.pyplot as plt\n%matplotlib inline\nsns.set_theme(style='whitegrid')",
    "rng = np.random.default_rng(3)\nn = 120\ntips = pd.DataFrame({\n    'total_bill': rng.gamma(4, 5, n).round(2),\n    'day': rng.choice(['Thur', 'Fri', 'Sat', 'Sun'], n),\n    'time': rng.choice(['Lunch', 'Dinner'], n),\n    'size': rng.integers(1, 6, n),\n})\ntips['tip'] = (tips['total_bill'] * rng.uniform(0.08, 0.22, n)).round(2)\ntips.head()",
    "sns.histplot(data=tips, x='total_bill', bins=20)",
    "sns.boxplot(data=tips, x='day', y='tip')\nplt.title('tips by day')",
    "tips['tip_pct'] = tips['tip'] / tips['total_bill']\ntips['tip_pct'].describe()",
    "sns.scatterplot(data=tips, x='total_bill', y='tip', hue='time')",
    "pivot = tips.pivot_table(index='day', columns='time', values='tip_pct', aggfunc='mean')\npivot",
    "sns.heatmap(pivot, annot=True, fmt='.2f')",
    "by_size = tips.groupby('size')['tip'].mean()\nby_size",
    "g = sns.relplot(data=tips, x='total_bill', y='tip', col='time')",
]

CORPUS["sales_timeseries"] = [
    "# Monthly sales from a CSV file",
    "import pandas as pd\nimport matplotlib.pyplot as plt\n%matplotlib inline",
    "sales = pd.read_csv('data/sales.csv', parse_dates=['date'])\nsales.info()",
    "sales.dropna(subset=['units'], inplace=True)\nsales['region'] = sales['region'].fillna('unknown')\nlen(sales)",
    "sales['revenue'] = sales['units'] * sales['unit_price']\nsales.set_index('date', inplace=True)\nsales.head()",
    "monthly = sales['revenue'].resample('MS').sum()\nmonthly",
    "monthly.plot(marker='o', title='revenue per month')",
    "rolling = sales['revenue'].rolling('14D').mean()\nrolling.plot()",
    "by_region = sales.groupby('region')['revenue'].sum().sort_values(ascending=False)\ndisplay(by_region)",
    "by_product = sales.pivot_table(index=sales.index.month, columns='product', values='units', aggfunc='sum')\nby_product.plot.bar(stacked=True)",
    "best_month = monthly.idxmax().strftime('%Y-%m')\nbest_month",
    "sales = sales[sales['region'] != 'unknown']  # redefinition\nshare = (sales.groupby('region')['revenue'].sum() / sales['revenue'].sum()).round(4)\nshare",
]

CORPUS["kmeans_clusters"] = [
    "# Clustering blobs with k-means",
    "import numpy as np\nimport matplotlib.pyplot as plt\nfrom sklearn.cluster import KMeans\nfrom sklearn.datasets import make_blobs\nfrom sklearn.metrics import silhouette_score\n%matplotlib inline",
    "X, true_labels = make_blobs(n_samples=300, centers=4, cluster_std=0.8, random_state=5)\nplt.scatter(X[:, 0], X[:, 1], s=6)",
    "inertias = []\nfor k in range(1, 8):\n    inertias.append(KMeans(n_clusters=k, n_init=5, random_state=0).fit(X).inertia_)\nplt.plot(range(1, 8), inertias, marker='o')",
    "km = KMeans(n_clusters=4, n_init=10, random_state=0)\nlabels = km.fit_predict(X)",
    "centers = km.cluster_centers_\nplt.scatter(X[:, 0], X[:, 1], c=labels, s=6)\nplt.scatter(centers[:, 0], centers[:, 1], c='red', marker='x')",
    "sil = silhouette_score(X, labels)\nround(sil, 4)",
    "sizes = np.bincount(labels)\nsizes",
    "class ClusterReport:\n    def __init__(self, model, data):\n        self.k = model.n_clusters\n        self.inertia = round(float(model.inertia_), 3)\n        self.spread = [round(float(np.linalg.norm(data[labels == i] - c, axis=1).mean()), 4) for i, c in enumerate(model.cluster_centers_)]\n\nreport = ClusterReport(km, X)\nreport.spread",
    "%timeit -n 2 -r 2 km.predict(X)",
]

CORPUS["word_counts"] = [
    "# Counting words: plain Python with helper classes",
    "import re\nfrom collections import Counter, defaultdict",
    "TEXT = '''It was the best of times, it was the worst of times, it was the age of wisdom,\nit was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity'''",
    'class Tokenizer:\n    pattern = re.compile(r"[a-z\']+")\n    def __init__(self, stop=()):\n        self.stop = set(stop)\n    def __call__(self, text):\n        return [w for w in self.pattern.findall(text.lower()) if w not in self.stop]',
    "tokenize = Tokenizer(stop={'it', 'was', 'the', 'of'})\nwords = tokenize(TEXT)\nlen(words)",
    "counts = Counter(words)\ncounts.most_common(3)",
    "counts.update(['times', 'age'])  # a method call changes counts in place\ncounts['times']",
    "by_first = defaultdict(list)\nfor w in sorted(set(words)):\n    by_first[w[0]].append(w)\ndict(by_first)",
    "history = []\nhistory.append(len(counts))",
    "history.append(sum(counts.values()))  # appends to the list of the cell above\nhistory",
    "%%time\nlongest = max(words, key=len)\nvowels = sum(1 for w in words for ch in w if ch in 'aeiou')",
    "def share(word):\n    return counts[word] / sum(counts.values())\n\nshares = {w: round(share(w), 4) for w in ['times', 'age', 'epoch']}\nshares",
    "print(f'{longest=} {vowels=}')",
]

CORPUS["monte_carlo"] = [
    "# Monte Carlo: estimating pi and simulating random walks",
    "import asyncio\nimport numpy as np\nimport matplotlib.pyplot as plt\n%matplotlib inline",
    "rng = np.random.default_rng(2024)\nN = 20_000",
    "points = rng.uniform(-1, 1, size=(N, 2))\ninside = (points ** 2).sum(axis=1) <= 1\npi_estimate = 4 * inside.mean()\npi_estimate",
    "steps = rng.choice([-1, 1], size=(50, 200))  # draws from the same generator\nwalks = steps.cumsum(axis=1)",
    "for w in walks[:10]:\n    plt.plot(w, lw=0.7)\nplt.title('random walks')",
    "final = walks[:, -1]\nfinal_stats = (float(final.mean()), float(final.std()))",
    "class Walker:\n    def __init__(self, seed):\n        self.rng = np.random.default_rng(seed)\n        self.position = 0\n    def walk(self, n):\n        self.position += int(self.rng.choice([-1, 1], size=n).sum())\n        return self.position\n\nwalker = Walker(7)\nwalker.walk(100)",
    "walker.walk(100)  # the walker of the cell above moves on\nposition = walker.position",
    "async def simulate(seed):\n    await asyncio.sleep(0)\n    return float(np.random.default_rng(seed).normal())\n\nsamples = [await simulate(s) for s in range(5)]",
    "%timeit -n 3 -r 2 rng.uniform(size=1000)",
    "plt.hist(final, bins=15)\nplt.show()",
]

CORPUS["digits_pca"] = [
    "# Handwritten digits: PCA and a linear classifier",
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\nfrom sklearn.datasets import load_digits\nfrom sklearn.decomposition import PCA\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.model_selection import cross_val_score\n%matplotlib inline",
    "digits = load_digits()\nX, y = digits.data, digits.target\nX.shape",
    "fig, axes = plt.subplots(1, 5, figsize=(8, 2))\nfor ax, image, label in zip(axes, digits.images, y):\n    ax.imshow(image, cmap='gray_r')\n    ax.set_title(label)\n    ax.axis('off')",
    "pca = PCA(n_components=10, random_state=0)\npca.fit(X)",
    "explained = pca.explained_variance_ratio_.cumsum()\nplt.plot(explained, marker='.')\nexplained[-1].round(4)",
    "X_small = pca.transform(X)\nprojected = pd.DataFrame(X_small[:, :2], columns=['pc1', 'pc2'])\nprojected['digit'] = y\nprojected.groupby('digit').mean().round(3)",
    "plt.scatter(projected['pc1'], projected['pc2'], c=y, s=4, cmap='tab10')",
    "clf = LogisticRegression(max_iter=500)\ncv = cross_val_score(clf, X_small, y, cv=3)\ncv.round(4)",
    "clf.fit(X_small, y)\nwrong = int((clf.predict(X_small) != y).sum())\nwrong",
    "X_small = X_small[:, :5]  # redefinition: fewer components\nclf5 = LogisticRegression(max_iter=500).fit(X_small, y)\nacc5 = round(clf5.score(X_small, y), 4)",
]

CORPUS["inventory_oop"] = [
    "# An inventory model: classes, dataclasses and a report",
    "from dataclasses import dataclass, field\nimport json\nimport pandas as pd",
    "@dataclass\nclass Item:\n    sku: str\n    price: float\n    qty: int = 0\n\n    @property\n    def value(self):\n        return round(self.price * self.qty, 2)",
    "@dataclass\nclass Inventory:\n    items: dict = field(default_factory=dict)\n\n    def add(self, item):\n        self.items[item.sku] = item\n\n    def total(self):\n        return round(sum(i.value for i in self.items.values()), 2)",
    "inv = Inventory()\nfor sku, price, qty in [('A1', 2.5, 10), ('B2', 10.0, 3), ('C3', 0.99, 100)]:\n    inv.add(Item(sku, price, qty))\ninv.total()",
    "inv.add(Item('D4', 45.0, 1))  # the inventory of the cell above grows\ninv.items['A1'].qty -= 4\ninv.total()",
    "frame = pd.DataFrame([vars(i) | {'value': i.value} for i in inv.items.values()])\nframe",
    "frame.sort_values('value', ascending=False, inplace=True)\ndisplay(frame)",
    "payload = json.dumps({'total': inv.total(), 'skus': sorted(inv.items)})\npayload",
    "LOW_STOCK = 5\ndef low_stock(inventory):\n    return sorted(s for s, i in inventory.items.items() if i.qty < LOW_STOCK)\n\nlow = low_stock(inv)\nlow",
    "prices = {sku: item.price for sku, item in inv.items.items()}",
]


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    """A plain notebook: a leading ``# `` line makes a Markdown cell, the rest are code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source in cells:
        if source.startswith("# ") and "\n" not in source:
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def write_all() -> list[Path]:
    """Write every notebook of the corpus (ids are fixed so the files are reproducible)."""
    NOTEBOOKS.mkdir(exist_ok=True)
    written = []
    for name, cells in CORPUS.items():
        nb = notebook(cells)
        for number, cell in enumerate(nb.cells):
            cell["id"] = f"{name}-{number}"
        path = NOTEBOOKS / f"{name}.ipynb"
        nbformat.write(nb, str(path))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path)
